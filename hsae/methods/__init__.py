"""The hierarchy methods a recipe can train (``model.method``), found in the plugin group
``hsae.methods`` (contract: ``hsae.interfaces.method``). The first-party ones, the cascade and
the baselines the paper compares it with (spec §6), are registered in pyproject.toml like any
third party's:

    cascade      the CSAE (hsae.cascade), the default
    flat         independent SAEs per level, parents by co-activation
    p_anneal     flat SAEs with the P-Annealing sparsity schedule
    matryoshka   one nested-prefix dictionary, level blocks, parents by co-activation
    stacked      each level an SAE on the codes of the level below, parents by co-activation
    hac          level-1 SAE, atoms grouped by agglomerative clustering
    spectral     level-1 SAE, atoms grouped by spectral clustering

Every method yields a hierarchy of the same shape (level-1 atoms whose per-image activations
HMS reads, and π_2, …, π_L), so the same evaluation scores each of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from hsae import registry
from hsae.errors import PluginError
from hsae.interfaces.method import Method

GROUP = "hsae.methods"

__all__ = ["GROUP", "build_model", "check_method", "method_spec"]


def method_spec(method: str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, options) of ``model.method``, given as a bare name or ``{name: ..., <options>}``."""
    if isinstance(method, str):
        return method, {}
    options = dict(method)
    name = options.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f"model.method needs a 'name' (one of {', '.join(registry.names(GROUP))}); "
                         f"got keys {sorted(method)}")
    return name, options


def _method(spec: str | Mapping[str, Any]) -> Method:
    """The method plugin of ``spec``; ValueError (a recipe error) when unknown or ill-configured."""
    name, options = method_spec(spec)
    known = registry.names(GROUP)
    if name not in known:
        raise ValueError(f"model.method: unknown method {name!r}; the methods are {', '.join(known)}")
    if options and not registry.load(GROUP, name).Config.model_fields:
        raise ValueError(f"model.method: {name!r} takes no options; got {sorted(options)}")
    try:
        return registry.create(GROUP, {"name": name, **options})
    except PluginError as exc:
        raise ValueError(f"model.method: {exc}") from None


class _Parts:
    """The core's building blocks lent to a method (``hsae.interfaces.method.Parts``)."""

    def method(self, spec: str | Mapping[str, Any], n_inputs: int, model: Any, steps: int) -> nn.Module:
        method = _method(spec)
        method.check(model, steps)
        return method.build(n_inputs, model, steps, self)


def check_method(model, steps: int) -> None:
    """Everything about ``model.method`` that can be checked before training (ValueError)."""
    _method(model.method).check(model, steps)


def build_model(n_inputs: int, model, steps: int) -> nn.Module:
    """The trainable model of a recipe's ``model`` section (a cascade for ``cascade``)."""
    return _method(model.method).build(n_inputs, model, steps, _Parts())
