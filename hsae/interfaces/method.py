"""Hierarchy-method plugins (group ``hsae.methods``): what a recipe's ``model.method`` trains.

A method plugin is built from its options (the keys beside ``name`` in ``model.method``) and
builds one trainable model from the recipe's ``model`` section (its ``levels``, each with
``n_latents`` and an ``encoder``; ``stop_gradient``; ``mask_threshold``: docs/recipes.md). The
cascade (spec §2-3) is one such plugin; the baselines of spec §6 are others.

The model is a ``torch.nn.Module`` that the core trains and scores without knowing its kind:

training
    ``forward(x, step)`` → an output with ``loss`` (the scalar to minimise), ``x_hat`` and
    ``levels``: one report per trained level with ``level``, ``weight``, ``loss``, ``fvu``,
    ``l0``, ``n_inputs``, ``n_active``; ``monitors``: ``{str(l): m}`` with
    ``m.dead_fraction(window)``; ``param_groups(lr)``; ``reset_parameters(generator)``;
    ``after_backward()`` and ``after_step()`` around the optimizer step.
evaluation
    ``widths`` = [n₁, …, n_L] and ``depth`` = L; ``level(1)``: a module whose ``forward(x)``
    gives ``x_hat`` and the level-1 codes ``z`` (HMS pools them per image), with the level-1
    atoms as ``W_dec`` (d, n₁); ``decoder(l)``: level ``l``'s units as columns;
    ``parents(rows)`` → [π_2, …, π_L] (int arrays, −1 for no parent); ``level_figures(rows)``
    → ``{str(l): {"rows", "fvu", "l0", "dead"}}`` for l ≥ 2. ``rows`` is a callable giving a
    fresh iterator over chunks of (scaled) evaluation rows.
saving
    ``state_dict()`` / ``load_state_dict()``: the run directory (docs/formats.md) stores the
    state and rebuilds the model with :meth:`Method.build` from ``config.json``, so the shapes
    must follow from the model section, the options and the training length alone. State
    under the names ``monitors`` (firing counters) and ``b_dec_ready`` (initialisation flags) is
    training-only: checkpoints keep it, the run directory does not.

A method composes the core's models through the :class:`Parts` it is given; it never imports
them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from torch import nn

from hsae.interfaces.plugin import Plugin

class Parts(Protocol):
    """The core's building blocks, lent to :meth:`Method.build`."""

    def method(self, spec: str | Mapping[str, Any], n_inputs: int, model: Any, steps: int) -> nn.Module:
        """The model that another registered method (``name`` or ``{name: ..., <options>}``)
        builds from the same arguments as :meth:`Method.build`; e.g. ``parts.method("cascade",
        ...)`` for a cascade of ``model``'s levels."""


class Method(Plugin):
    """Base of hierarchy-method plugins: builds the model a recipe's ``model`` section trains."""

    def check(self, model: Any, steps: int) -> None:
        """Raise ValueError for a ``model`` section (or training length) this method cannot build."""

    def build(self, n_inputs: int, model: Any, steps: int, parts: Parts) -> nn.Module:
        """The untrained model on activations of width ``n_inputs`` (the contract above)."""
        raise NotImplementedError
