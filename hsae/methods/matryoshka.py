"""Matryoshka baseline (spec §6; the paper's MSAE column): one dictionary of n_L + … + n₁
latents whose nested prefixes must each reconstruct the input.

The latents are ordered top level first: the first n_L are level L, …, the last n₁ are
level 1. With prefix ends e_1 < … < e_G = Σ n_l (``group_sizes``, default one group per
level) and weights w_g (``group_weights``, default 1/G each), the loss on a batch is

    L = Σ_g w_g ||x − (W_dec[:, :e_g] z[:, :e_g] + b_dec)||² + λ_s S(z)  (+ the encoder's aux loss)

scaled like a cascade level (``normalisation``). The code z comes from one encoder over the
whole dictionary: with ``batchtopk`` (the reference implementation's choice) the k·B largest
pre-activations over the batch are kept across all groups, and inference uses the learned
threshold. The dictionary takes its encoder and training options from ``levels[0]``; the
other levels give only their widths. Parents by co-activation of the level blocks over the
evaluation rows.
"""

from __future__ import annotations

from itertools import accumulate

import torch
from pydantic import Field
from torch import nn

from hsae import registry
from hsae.cascade.cascade import CascadeOutput, FiringMonitor, LevelOutput, level_loss_scale, usage_penalty
from hsae.interfaces.encoder import Encoding
from hsae.methods.base import BaselineMethod, HierarchyModel, MethodOptions
from hsae.sae.sae import SAE, SAEOutput


class MatryoshkaOptions(MethodOptions):
    group_sizes: list[int] | None = Field(
        None, description="sizes of the nested groups, first group first, summing to n_1 + … + n_L "
        "(default: one group per level, [n_L, …, n_1])")
    group_weights: list[float] | None = Field(
        None, description="weight of each group's reconstruction term (default 1/G each)")


class LevelBlock:
    """The level-l latents of a Matryoshka dictionary, read like a level's SAE: calling it on x
    gives the whole dictionary's reconstruction of x and this block's codes."""

    def __init__(self, owner: "Matryoshka", l: int):
        self.owner, self.l = owner, l
        self.n_latents = owner.widths[l - 1]

    @property
    def W_dec(self) -> torch.Tensor:
        return self.owner.dictionary.W_dec[:, self.owner.block(self.l)]

    def __call__(self, x: torch.Tensor) -> SAEOutput:
        out = self.owner.dictionary(x)
        z = out.z[:, self.owner.block(self.l)]
        return SAEOutput(Encoding(z, z.new_zeros(z.shape[0])), out.x_hat)


class Matryoshka(HierarchyModel):
    """Nested-prefix dictionary (Matryoshka SAE): first n_L latents level L, …, last n₁ level 1."""

    Options = MatryoshkaOptions

    @classmethod
    def check(cls, model, options: MatryoshkaOptions, steps: int) -> None:
        total = sum(lv.n_latents for lv in model.levels)
        if options.group_sizes is not None:
            if any(size <= 0 for size in options.group_sizes) or sum(options.group_sizes) != total:
                raise ValueError(f"matryoshka: group_sizes must be positive and sum to the dictionary's "
                                 f"{total} latents (n_1 + … + n_L); got {options.group_sizes}")
        n_groups = len(options.group_sizes) if options.group_sizes is not None else len(model.levels)
        if options.group_weights is not None and len(options.group_weights) != n_groups:
            raise ValueError(f"matryoshka: group_weights needs one weight per group ({n_groups}); "
                             f"got {len(options.group_weights)}")

    def __init__(self, n_inputs: int, model, options: MatryoshkaOptions, steps: int):
        super().__init__(n_inputs, [lv.n_latents for lv in model.levels])
        self.settings = model.levels[0]
        total = sum(self.widths)
        encoder = registry.create("hsae.encoders", self.settings.encoder, n_inputs=n_inputs, n_latents=total)
        self.dictionary = SAE(n_inputs, total, encoder, self.settings.normalize_decoder)
        sizes = options.group_sizes or self.widths[::-1]
        self.prefix_ends = list(accumulate(sizes))
        self.group_weights = options.group_weights or [1.0 / len(sizes)] * len(sizes)
        self.views = [LevelBlock(self, l) for l in range(1, self.depth + 1)]
        self.level_monitors = nn.ModuleDict({str(l): FiringMonitor(n) for l, n in enumerate(self.widths, start=1)})
        self.register_buffer("b_dec_ready", torch.zeros((), dtype=torch.bool))

    def block(self, l: int) -> slice:
        """Latents of level l: after the blocks of levels L, …, l+1."""
        start = sum(self.widths[l:])
        return slice(start, start + self.widths[l - 1])

    def prefix_reconstructions(self, z: torch.Tensor) -> list[torch.Tensor]:
        """x̂_g = W_dec[:, :e_g] z[:, :e_g] + b_dec for every group end e_g, built incrementally."""
        W, recon, start, out = self.dictionary.W_dec, self.dictionary.b_dec.expand(z.shape[0], -1), 0, []
        for end in self.prefix_ends:
            recon = recon + z[:, start:end] @ W[:, start:end].t()
            out.append(recon)
            start = end
        return out

    def forward(self, x: torch.Tensor, step: int | None = None) -> CascadeOutput:
        cfg, sae = self.settings, self.dictionary
        if self.training and not bool(self.b_dec_ready):
            sae.init_b_dec(x, cfg.b_dec_init)
            self.b_dec_ready.fill_(True)
        enc = sae.encode(x)
        z = enc.z
        prefixes = self.prefix_reconstructions(z)
        errors = [(x - recon).pow(2).sum(-1).mean() for recon in prefixes]
        nested = sum(w * e for w, e in zip(self.group_weights, errors))
        penalty = enc.penalty.mean() * (cfg.sparsity_coef * sae.encoder.sparsity_scale(step or 0))
        if cfg.usage_coef:
            penalty = penalty + cfg.usage_coef * usage_penalty(z)
        scale = level_loss_scale(x, cfg.normalisation)
        loss = (nested + penalty) / scale
        aux = sae.encoder.aux_loss(enc, x, prefixes[-1], sae)
        if aux is not None:
            loss = loss + aux / scale
        return CascadeOutput(loss, self._level_outputs(x, z, loss, errors[-1], scale), prefixes[-1])

    @torch.no_grad()
    def _level_outputs(self, x, z, loss, full_error, scale) -> list[LevelOutput]:
        """Level 1 carries the loss (weight 1); level l ≥ 2 reports its block and, as its
        reconstruction, that of the prefix ending with its block (weight 0: informational)."""
        variance = (x - x.mean(0)).pow(2).sum(-1).mean().clamp_min(1e-12)
        outputs = []
        for l in range(1, self.depth + 1):
            block = z[:, self.block(l)]
            if l == 1:
                err, level_loss, weight = full_error.detach(), loss, 1.0
            else:
                end = self.block(l).stop
                recon = z[:, :end] @ self.dictionary.W_dec[:, :end].t() + self.dictionary.b_dec
                err = (x - recon).pow(2).sum(-1).mean()
                level_loss, weight = err / scale, 0.0
            fired = block.max(0).values > 0
            if self.training:
                self.level_monitors[str(l)].update(fired)
            outputs.append(LevelOutput(l, weight, level_loss, err, err / variance, (block > 0).sum(-1).float().mean(),
                                       x.shape[0], int(fired.sum()), block))
        return outputs

    @property
    def monitors(self):
        return self.level_monitors

    def param_groups(self, lr: float) -> list[dict]:
        return [{"params": list(self.dictionary.parameters()), "lr": self.settings.lr or lr, "name": "dictionary"}]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.dictionary.reset_parameters(generator)
        self.b_dec_ready.fill_(False)

    def level(self, l: int) -> LevelBlock:
        return self.views[l - 1]

    def decoder(self, l: int) -> torch.Tensor:
        return self.views[l - 1].W_dec

    def row_codes(self, x: torch.Tensor) -> list[torch.Tensor]:
        z = self.dictionary.encode(x).z
        return [z[:, self.block(l)] for l in range(1, self.depth + 1)]

    def reconstruction(self, l, x):
        """Level l ≥ 2 reconstructs x from the prefix that ends with its block."""
        z = self.dictionary.encode(x).z
        end = self.block(l).stop
        return x, z[:, :end] @ self.dictionary.W_dec[:, :end].t() + self.dictionary.b_dec, z[:, self.block(l)]


class MatryoshkaMethod(BaselineMethod):
    """Matryoshka baseline: one nested-prefix dictionary cut into level blocks; parents by co-activation."""

    Model = Matryoshka
