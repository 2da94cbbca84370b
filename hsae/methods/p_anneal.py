"""P-Annealing baseline (the paper's "P-Anneal" column; Karvonen et al. 2024): flat SAEs (as
in :mod:`hsae.methods.flat`) whose sparsity term is an annealed power of the code,

    S_p(z) = Σ_{j : z_j > 0} (z_j ||W_dec[:, j]||)^p,

equal to the ReLU SAE's term at p = 1. The schedule follows the public reference
(``dictionary_learning/trainers/p_anneal.py`` of saprmarks/dictionary_learning, its
``Lp^p`` sparsity function):

- ``n_updates`` update steps u_0 < … < u_{n−1}, spread linearly (rounded down) from
  ``anneal_start`` to ``anneal_end`` (fractions of train.steps here; u_{n−1} at most the
  step before the last, so that the last step uses p_end), and exponents p_0 = 1, …,
  p_{n−1} = ``p_end`` spread linearly;
- the loss of step s uses p_i for the last u_i < s (p = 1 up to and including u_0);
- at u_i (i ≥ 1) the coefficient is rescaled so that the penalty does not jump,
  α ← α · mean S_{p_{i−1}}(z) / mean S_{p_i}(z), both means over the last ``queue_length``
  training batches.

α starts at the level's ``sparsity_coef``. Parents by co-activation, as for flat SAEs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from pydantic import Field, model_validator

from hsae.interfaces.encoder import Encoder, Encoding
from hsae.methods.base import BaselineMethod, MethodOptions
from hsae.methods.flat import Flat


class PAnnealOptions(MethodOptions):
    p_end: float = Field(0.5, ge=0, lt=1, description="the exponent p reached at the end of the anneal (it starts at 1)")
    anneal_start: float = Field(0.2, ge=0, lt=1, description="first update step, as a fraction of train.steps")
    anneal_end: float = Field(0.8, gt=0, le=1, description="last update step, as a fraction of train.steps")
    n_updates: int = Field(10, ge=2, description="number of exponent updates")
    queue_length: int = Field(10, ge=1, description="training batches averaged for the coefficient rescaling")

    @model_validator(mode="after")
    def _ordered(self) -> "PAnnealOptions":
        if self.anneal_end <= self.anneal_start:
            raise ValueError(f"anneal_end ({self.anneal_end}) must come after anneal_start ({self.anneal_start})")
        return self


@dataclass(frozen=True)
class AnnealPlan:
    """Update steps u_i and the exponent p_i that takes effect after each."""

    update_steps: tuple[int, ...]
    exponents: tuple[float, ...]

    @classmethod
    def from_options(cls, options: PAnnealOptions, steps: int) -> "AnnealPlan":
        last = min(int(options.anneal_end * steps), steps - 2)  # p_end must be used on the last step
        first = int(options.anneal_start * steps)
        updates = np.linspace(first, last, options.n_updates).astype(np.int64)
        if len(set(updates.tolist())) < options.n_updates:
            raise ValueError(f"p_anneal: {options.n_updates} exponent updates do not fit between steps {first} "
                             f"and {last} of {steps}; lower n_updates or widen the anneal window")
        exponents = np.linspace(1.0, options.p_end, options.n_updates)
        return cls(tuple(int(u) for u in updates), tuple(float(p) for p in exponents))

    def exponent_at(self, step: int) -> float:
        """p used by the loss of training step ``step``."""
        done = sum(u < step for u in self.update_steps)
        return self.exponents[done - 1] if done else 1.0


def power_penalty(weighted: torch.Tensor, p: float) -> torch.Tensor:
    """Σ_j w_j^p over the positive entries of each row (a gradient-safe power at zero)."""
    positive = weighted > 0
    return (torch.where(positive, weighted, torch.ones_like(weighted)).pow(p) * positive).sum(-1)


class AnnealedPower(Encoder):
    """Wraps an encoder with a non-negative code: same σ, sparsity term S_p with p annealed."""

    def __init__(self, inner: Encoder, plan: AnnealPlan, queue_length: int):
        super().__init__(None, n_inputs=inner.n_inputs, n_latents=inner.n_latents)
        self.inner, self.plan = inner, plan
        self.register_buffer("p", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("next_p", torch.tensor(math.nan, dtype=torch.float64))
        self.register_buffer("alpha", torch.tensor(1.0, dtype=torch.float64))
        self.register_buffer("updates_done", torch.zeros((), dtype=torch.long))
        self.register_buffer("queue", torch.zeros(queue_length, 2, dtype=torch.float64))
        self.register_buffer("queued", torch.zeros((), dtype=torch.long))

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        enc = self.inner.encode(proj, b_enc, dec_norm)
        weighted = enc.z * dec_norm
        penalty = power_penalty(weighted, float(self.p))
        if self.training and not torch.isnan(self.next_p):
            with torch.no_grad():
                slot = int(self.queued) % len(self.queue)
                self.queue[slot, 0] = penalty.mean()
                self.queue[slot, 1] = power_penalty(weighted, float(self.next_p)).mean()
                self.queued += 1
        return Encoding(enc.z, penalty, enc.extras)

    def aux_loss(self, enc, x, x_hat, sae):
        return self.inner.aux_loss(enc, x, x_hat, sae)

    def sparsity_scale(self, step: int) -> float:
        """α / α₀ for this step; afterwards, at an update step, rescale α and move p on."""
        scale = float(self.alpha)
        if self.training:
            self._advance(step)
        return scale

    @torch.no_grad()
    def _advance(self, step: int) -> None:
        i = int(self.updates_done)
        if i >= len(self.plan.update_steps) or step < self.plan.update_steps[i]:
            return
        filled = min(int(self.queued), len(self.queue))
        if i > 0 and filled:
            current, following = self.queue[:filled].mean(0)
            if following > 0:
                self.alpha *= current / following
        self.p.fill_(self.plan.exponents[i])
        self.next_p.fill_(self.plan.exponents[min(i + 1, len(self.plan.exponents) - 1)])
        self.updates_done += 1


class PAnneal(Flat):
    """Flat SAEs whose sparsity exponent p is annealed from 1 to ``p_end``; parents by co-activation."""

    Options = PAnnealOptions

    @classmethod
    def check(cls, model, options: PAnnealOptions, steps: int) -> None:
        AnnealPlan.from_options(options, steps)

    def __init__(self, n_inputs: int, model, options: PAnnealOptions, steps: int):
        super().__init__(n_inputs, model, options, steps)
        plan = AnnealPlan.from_options(options, steps)
        for l in range(1, self.depth + 1):
            sae = self.sae(l)
            sae.encoder = AnnealedPower(sae.encoder, plan, options.queue_length)


class PAnnealMethod(BaselineMethod):
    """P-Annealing baseline: flat SAEs whose sparsity exponent p anneals from 1 to p_end; parents by co-activation."""

    Model = PAnneal
