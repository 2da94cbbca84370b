"""Flat baseline (spec §6; the paper's BatchTopK, TopK, ReLU, Gated and JumpReLU columns):
one independent SAE per level, each of width n_l, all trained on the same activations.

Each SAE is ``levels[l]`` of the recipe with its own encoder and loss (Eq. 1-3); they share
the batches and one optimizer but no parameter and no loss term. λ_l, ``start_step`` and
``lambda_warmup`` do not apply: every SAE trains from the first step with weight 1. The
hierarchy is built afterwards by co-activation over the evaluation rows:
π(i) = argmax_k #{n : z¹_i(n) > 0 ∧ z²_k(n) > 0}.
"""

from __future__ import annotations

import torch

from hsae.cascade.cascade import CascadeOutput
from hsae.methods.base import BaselineMethod, SeparateSAEs
from hsae.sae.sae import SAE


class Flat(SeparateSAEs):
    """Independent SAEs of widths n₁, …, n_L on the activations; parents by co-activation."""

    def __init__(self, n_inputs: int, model, options, steps: int):
        widths = [lv.n_latents for lv in model.levels]
        super().__init__(n_inputs, widths, [n_inputs] * len(widths), list(model.levels))

    def forward(self, x: torch.Tensor, step: int | None = None) -> CascadeOutput:
        outs = [self.train_level(l, x, step) for l in range(1, self.depth + 1)]
        return CascadeOutput(sum(out.loss for out in outs), [out.levels[0] for out in outs], outs[0].x_hat)

    def activation_sae(self, l: int) -> SAE:
        return self.sae(l)

    def row_codes(self, x: torch.Tensor) -> list[torch.Tensor]:
        return [self.sae(l).encode(x).z for l in range(1, self.depth + 1)]

    def reconstruction(self, l, x):
        out = self.sae(l)(x)
        return x, out.x_hat, out.z


class FlatMethod(BaselineMethod):
    """Flat baseline: independent SAEs per level on the activations; parents by co-activation."""

    Model = Flat
