"""The model kinds a recipe can train (``model.method``): the cascade, and the baselines the
paper compares it with (spec §6). Each baseline yields a hierarchy of the same shape as a
cascade's (level-1 atoms whose per-image activations HMS reads, and π_2, …, π_L), so the same
evaluation scores every method.

    cascade      the CSAE (hsae.cascade), the default
    flat         independent SAEs per level, parents by co-activation
    p_anneal     flat SAEs with the P-Annealing sparsity schedule
    matryoshka   one nested-prefix dictionary, level blocks, parents by co-activation
    stacked      each level an SAE on the codes of the level below, parents by co-activation
    hac          level-1 SAE, atoms grouped by agglomerative clustering
    spectral     level-1 SAE, atoms grouped by spectral clustering
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from torch import nn

from hsae.cascade.cascade import Cascade
from hsae.methods.base import HierarchyModel, MethodOptions
from hsae.methods.flat import Flat
from hsae.methods.hac import HAC
from hsae.methods.matryoshka import Matryoshka
from hsae.methods.p_anneal import PAnneal
from hsae.methods.spectral import Spectral
from hsae.methods.stacked import Stacked

CASCADE = "cascade"
BASELINES: dict[str, type[HierarchyModel]] = {
    "flat": Flat,
    "p_anneal": PAnneal,
    "matryoshka": Matryoshka,
    "stacked": Stacked,
    "hac": HAC,
    "spectral": Spectral,
}
NAMES = (CASCADE, *BASELINES)

__all__ = ["BASELINES", "CASCADE", "NAMES", "HierarchyModel", "build_model", "check_method", "method_spec"]


def method_spec(method: str | dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(name, options) of ``model.method``, given as a bare name or ``{name: ..., <options>}``."""
    if isinstance(method, str):
        return method, {}
    options = dict(method)
    name = options.pop("name", None)
    if not isinstance(name, str):
        raise ValueError(f"model.method needs a 'name' (one of {', '.join(NAMES)}); got keys {sorted(method)}")
    return name, options


def _options(name: str, options: dict[str, Any]) -> MethodOptions | None:
    if name not in NAMES:
        raise ValueError(f"model.method: unknown method {name!r}; the methods are {', '.join(NAMES)}")
    if name == CASCADE:
        if options:
            raise ValueError(f"model.method: the cascade takes no options; got {sorted(options)}")
        return None
    try:
        return BASELINES[name].Options(**options)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or '(options)'}: {err['msg']}"
                             for err in exc.errors())
        raise ValueError(f"model.method {name!r}: invalid options: {problems}") from None


def check_method(model, steps: int) -> None:
    """Everything about ``model.method`` that can be checked before training (ValueError)."""
    name, raw = method_spec(model.method)
    options = _options(name, raw)
    if name == CASCADE:
        return
    if model.imported:
        raise ValueError(f"model.levels[0].from: a trained level 1 is read by the cascade only, not by {name!r}")
    if len(model.levels) < 2:
        raise ValueError(f"model.method {name!r} builds a hierarchy: give at least two levels")
    if model.stop_gradient != "none" or model.mask_threshold != 0:
        raise ValueError(f"model.method {name!r}: stop_gradient and mask_threshold belong to the cascade; "
                         "leave them at their defaults (none, 0)")
    BASELINES[name].check(model, options, steps)


def build_model(n_inputs: int, model, steps: int) -> nn.Module:
    """The trainable model of a recipe's ``model`` section (a Cascade for ``cascade``)."""
    name, raw = method_spec(model.method)
    options = _options(name, raw)
    if name == CASCADE:
        return Cascade(n_inputs, model.cascade_config())
    return BASELINES[name](n_inputs, model, options, steps)
