"""What every baseline of spec §6 provides, so that one trainer trains it and one evaluation
scores it exactly as it scores a cascade.

Training (the contract the trainer already uses for :class:`~hsae.cascade.cascade.Cascade`):
``forward(x, step) -> CascadeOutput``, ``after_backward()``, ``after_step()``,
``param_groups(lr)``, ``reset_parameters(generator)`` and ``monitors`` (a FiringMonitor per
reported level).

Evaluation: ``level(1)`` is a module whose ``forward(x)`` returns the model's reconstruction
of ``x`` as ``x_hat`` and the level-1 codes as ``z`` (HMS pools these per image), with the
level-1 atoms as ``W_dec`` (d, n₁) and ``n_latents``; ``row_codes(x)`` gives the codes of
every level on store rows; ``parents(rows)`` the hierarchy [π_2, …, π_L] (by default by
co-activation over the evaluation rows, spec §6); ``level_figures(rows)`` the FVU, L0 and
dead share of levels ≥ 2 on what each of them reconstructs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import ClassVar

import numpy as np
import torch
from torch import nn

from hsae.cascade.cascade import Cascade, CascadeOutput, FiringMonitor
from hsae.cascade.config import CascadeConfig, LevelConfig
from hsae.interfaces.method import Method
from hsae.interfaces.plugin import PluginConfig
from hsae.methods.coactivation import coactivation_parents
from hsae.sae.sae import SAE

RowSource = Callable[[], Iterable[torch.Tensor]]
"""Called for a fresh iterator over chunks of (already scaled) evaluation rows."""


class MethodOptions(PluginConfig):
    """Options of a method (the keys next to ``name`` in the recipe's ``model.method``)."""


class HierarchyModel(nn.Module):
    """Base of the baseline models: ``widths`` = [n₁, …, n_L] of the hierarchy it yields.

    A method class declares ``Options`` and is built as ``cls(n_inputs, model, options,
    steps)`` from the recipe's ``model`` section, its validated options and the training
    length; ``check(model, options, steps)`` rejects a model section it cannot build."""

    Options: type[MethodOptions] = MethodOptions

    @classmethod
    def check(cls, model, options: MethodOptions, steps: int) -> None:
        """Raise ValueError for a ``model`` section this method cannot build."""

    def __init__(self, n_inputs: int, widths: list[int]):
        super().__init__()
        self.n_inputs = n_inputs
        self.widths = list(widths)

    @property
    def depth(self) -> int:
        return len(self.widths)

    # ------------------------------------------------------------------ training

    def forward(self, x: torch.Tensor, step: int | None = None) -> CascadeOutput:
        raise NotImplementedError

    @property
    def monitors(self) -> Mapping[str, FiringMonitor]:
        raise NotImplementedError

    def param_groups(self, lr: float) -> list[dict]:
        raise NotImplementedError

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        raise NotImplementedError

    def _saes(self) -> list[SAE]:
        return [m for m in self.modules() if isinstance(m, SAE)]

    def after_backward(self) -> None:
        """Remove decoder-parallel gradient components of every SAE (unit-norm mode)."""
        for sae in self._saes():
            sae.remove_parallel_grad()

    def after_step(self) -> None:
        """Renormalise the decoder columns of every SAE."""
        for sae in self._saes():
            sae.renormalize_decoder()

    # ---------------------------------------------------------------- evaluation

    def level(self, l: int) -> nn.Module:
        """Level 1: the module HMS and the level-1 figures read (see the module docstring)."""
        raise NotImplementedError

    def decoder(self, l: int) -> torch.Tensor:
        """The units of level ``l`` as columns (for the near-duplicate count)."""
        raise NotImplementedError

    def activation_sae(self, l: int) -> SAE | None:
        """The SAE of level ``l`` when that level is an SAE on the activations (its code of x is
        its encoder's, its atoms live in R^d: ``hsae.load``, SAELens export), else None."""
        return None

    def row_codes(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Codes of levels 1..L on the rows ``x``: [(B, n₁), …, (B, n_L)]."""
        raise NotImplementedError

    def reconstruction(self, l: int, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target, reconstruction, codes) of level ``l ≥ 2`` on the rows ``x``."""
        raise NotImplementedError

    @torch.no_grad()
    def parents(self, rows: RowSource, rule: str = "threshold") -> list[np.ndarray]:
        """[π_2, …, π_L] by co-activation over the evaluation rows (spec §6), whatever the
        inference ``rule`` (it concerns the cascade's parents)."""
        return coactivation_parents((self.row_codes(x) for x in rows()), self.widths)

    @torch.no_grad()
    def level_figures(self, rows: RowSource) -> dict[str, dict]:
        """Per level l ≥ 2: FVU = Σ||t − t̂||² / Σ||t − mean t||² of what it reconstructs, its
        mean L0 and the share of its units that never fired, streamed over the rows."""
        sums = {l: _FigureSums(self.widths[l - 1]) for l in range(2, self.depth + 1)}
        for x in rows():
            for l, acc in sums.items():
                acc.add(*self.reconstruction(l, x))
        return {str(l): acc.figures() for l, acc in sums.items()}


class BaselineMethod(Method):
    """A baseline of spec §6 as an ``hsae.methods`` plugin: a subclass names its ``Model`` (a
    :class:`HierarchyModel`), whose ``Options`` are the plugin's options."""

    Model: ClassVar[type[HierarchyModel]]

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.Config = cls.Model.Options

    def check(self, model, steps: int) -> None:
        name = getattr(self, "plugin_name", type(self).__name__)
        if len(model.levels) < 2:
            raise ValueError(f"model.method {name!r} builds a hierarchy: give at least two levels")
        if model.imported:
            raise ValueError(f"model.levels[0].from: a trained level 1 is read by the cascade only, not by {name!r}")
        if model.stop_gradient != "none" or model.mask_threshold != 0:
            raise ValueError(f"model.method {name!r}: stop_gradient and mask_threshold belong to the cascade; "
                             "leave them at their defaults (none, 0)")
        self.Model.check(model, self.config, steps)

    def build(self, n_inputs: int, model, steps: int, parts) -> HierarchyModel:
        return self.Model(n_inputs, model, self.config, steps)


class SeparateSAEs(HierarchyModel):
    """A model made of one SAE per trained level, each a single-level cascade, so that it keeps
    the cascade's level loss (normalisation, sparsity and usage terms, auxiliary losses),
    decoder-bias initialisation and firing monitor. ``sae_inputs[i]`` is the input width of
    the SAE of ``levels[i]``."""

    def __init__(self, n_inputs: int, widths: list[int], sae_inputs: list[int], levels: list[LevelConfig]):
        super().__init__(n_inputs, widths)
        self.saes = nn.ModuleList(Cascade(w, CascadeConfig(levels=[lv])) for w, lv in zip(sae_inputs, levels))

    def sae(self, l: int) -> SAE:
        """The SAE of trained level ``l``."""
        return self.saes[l - 1].level(1)

    def train_level(self, l: int, inputs: torch.Tensor, step: int | None) -> CascadeOutput:
        """One step of the SAE of level ``l`` on ``inputs``, its figures reported as level ``l``."""
        out = self.saes[l - 1](inputs, step)
        return CascadeOutput(out.loss, [replace(out.levels[0], level=l)], out.x_hat)

    @property
    def monitors(self) -> Mapping[str, FiringMonitor]:
        return {str(l): cascade.monitors["1"] for l, cascade in enumerate(self.saes, start=1)}

    def param_groups(self, lr: float) -> list[dict]:
        groups = []
        for l, cascade in enumerate(self.saes, start=1):
            (group,) = cascade.param_groups(lr)
            groups.append({**group, "name": f"level{l}"})
        return groups

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for cascade in self.saes:
            cascade.reset_parameters(generator)

    def level(self, l: int) -> nn.Module:
        return self.sae(l)

    def decoder(self, l: int) -> torch.Tensor:
        return self.sae(l).W_dec

    def activation_sae(self, l: int) -> SAE | None:
        return self.sae(1) if l == 1 else None


class _FigureSums:
    """Running sums for a streamed FVU, mean L0 and dead share."""

    def __init__(self, n_units: int):
        self.rows, self.sq_err, self.sum_sq, self.l0 = 0, 0.0, 0.0, 0.0
        self.sum_t: torch.Tensor | None = None
        self.fired = torch.zeros(n_units, dtype=torch.bool)

    def add(self, target: torch.Tensor, recon: torch.Tensor, z: torch.Tensor) -> None:
        t = target.double()
        self.rows += t.shape[0]
        self.sq_err += float((t - recon.double()).pow(2).sum())
        self.sum_t = t.sum(0) if self.sum_t is None else self.sum_t + t.sum(0)
        self.sum_sq += float(t.pow(2).sum())
        self.l0 += float((z > 0).sum())
        self.fired |= (z > 0).any(0).cpu()

    def figures(self) -> dict:
        if not self.rows:
            return {"rows": 0, "fvu": None, "l0": None, "dead": None}
        variance = self.sum_sq - float(self.sum_t.pow(2).sum()) / self.rows
        return {"rows": self.rows, "fvu": self.sq_err / variance if variance > 0 else None,
                "l0": self.l0 / self.rows, "dead": float((~self.fired).float().mean())}
