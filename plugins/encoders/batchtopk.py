"""BatchTopK encoder (spec §5) with its inference threshold."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from hsae.interfaces.encoder import Encoder, Encoding
from hsae.interfaces.plugin import PluginConfig


class BatchTopKConfig(PluginConfig):
    k: float = Field(32, gt=0, description="average non-zeros per row; k·B are kept over a batch of B rows")
    threshold_beta: float = Field(0.999, ge=0, lt=1, description="EMA factor of the inference threshold")
    threshold_start: int = Field(0, ge=0, description="training batches before the threshold EMA starts")


class BatchTopKEncoder(Encoder):
    """BatchTopK SAE: keep the k·B largest ReLU(p) over the batch; at inference z = p·1[p > θ]."""

    Config = BatchTopKConfig

    def __init__(self, config=None, *, n_inputs: int, n_latents: int):
        super().__init__(config, n_inputs=n_inputs, n_latents=n_latents)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        pre = proj + b_enc
        if not self.training:
            z = pre * (pre > self.threshold)
            return Encoding(z, z.new_zeros(z.shape[0]))
        flat = torch.relu(pre).flatten()
        keep = min(flat.numel(), math.ceil(self.config.k * pre.shape[0]))
        top, idx = flat.topk(keep)
        z = torch.zeros_like(flat).scatter(0, idx, top).view_as(pre)
        self._update_threshold(top.detach())
        return Encoding(z, z.new_zeros(z.shape[0]))

    @torch.no_grad()
    def _update_threshold(self, kept: torch.Tensor) -> None:
        """θ ← β θ + (1 − β) · (smallest positive kept activation), after ``threshold_start`` batches."""
        self.batches_seen += 1
        positive = kept[kept > 0]
        if positive.numel() == 0 or int(self.batches_seen) <= self.config.threshold_start:
            return
        smallest = positive.min()
        if self.threshold <= 0:  # first update: start the average at the observed value
            self.threshold.copy_(smallest)
        else:
            beta = self.config.threshold_beta
            self.threshold.mul_(beta).add_((1 - beta) * smallest)
