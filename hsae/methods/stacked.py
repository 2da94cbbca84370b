"""Stacked baseline (spec §6, the paper's "Stacked" column and Table 4): level 1 is an SAE on
the activations; level l ≥ 2 is an SAE whose inputs are the level-(l−1) *codes*
z^{l−1}(x) ∈ R^{n_{l−1}}, so its input width is n_{l−1}.

All levels train in one loop: level l reads sg(z^{l−1}(x)) of the same batch (the codes are
detached, so level l never changes the levels below it) from its ``start_step`` on, and its
decoder bias is initialised from the codes it first sees. λ_l does not apply (weight 1).
Parents by co-activation of z^{l−1} and z^l over the evaluation rows.
"""

from __future__ import annotations

import torch

from hsae.cascade.cascade import CascadeOutput
from hsae.methods.base import BaselineMethod, SeparateSAEs


class Stacked(SeparateSAEs):
    """An SAE on the activations, then each level an SAE on the codes of the level below."""

    def __init__(self, n_inputs: int, model, options, steps: int):
        widths = [lv.n_latents for lv in model.levels]
        super().__init__(n_inputs, widths, [n_inputs, *widths[:-1]], list(model.levels))
        self.start_steps = [lv.start_step for lv in model.levels]

    def forward(self, x: torch.Tensor, step: int | None = None) -> CascadeOutput:
        first = self.train_level(1, x, step)
        outs, codes = [first], first.levels[0].z.detach()
        for l in range(2, self.depth + 1):
            if step is not None and step < self.start_steps[l - 1]:
                break
            out = self.train_level(l, codes, step)
            outs.append(out)
            codes = out.levels[0].z.detach()
        return CascadeOutput(sum(out.loss for out in outs), [out.levels[0] for out in outs], first.x_hat)

    def row_codes(self, x: torch.Tensor, top: int | None = None) -> list[torch.Tensor]:
        """Codes of levels 1..``top`` (default: all) on the rows ``x``, each level reading the last."""
        codes = [self.sae(1).encode(x).z]
        for l in range(2, (top or self.depth) + 1):
            codes.append(self.sae(l).encode(codes[-1]).z)
        return codes

    def reconstruction(self, l, x):
        below = self.row_codes(x, top=l - 1)[-1]
        out = self.sae(l)(below)
        return below, out.x_hat, out.z


class StackedMethod(BaselineMethod):
    """Stacked baseline: each level an SAE on the codes of the level below; parents by co-activation."""

    Model = Stacked
