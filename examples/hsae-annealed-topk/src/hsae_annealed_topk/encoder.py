"""Annealed TopK: a TopK encoder (spec §5) whose k falls from ``k_start`` to ``k`` during training.

Early in training many latents fire per row, so most receive gradient; the budget then shrinks
linearly to the target k over ``anneal_batches`` training batches:

    k_t = round(k_start + (k − k_start) · min(1, t / anneal_batches)),   z = TopK_{k_t}(ReLU(p))

with t the number of training batches this encoder has coded (a buffer, saved with the model,
so a resumed run continues the schedule). In eval mode k_t = k.
"""

from __future__ import annotations

import torch
from pydantic import Field, model_validator

from hsae.interfaces.encoder import Encoder, Encoding
from hsae.interfaces.plugin import PluginConfig


class AnnealedTopKConfig(PluginConfig):
    k: int = Field(32, ge=1, description="non-zeros kept per row once annealed (and in eval mode)")
    k_start: int = Field(128, ge=1, description="non-zeros kept per row on the first training batch")
    anneal_batches: int = Field(1000, ge=1, description="training batches over which k falls from k_start to k")

    @model_validator(mode="after")
    def _falls(self) -> "AnnealedTopKConfig":
        if self.k_start < self.k:
            raise ValueError(f"k_start ({self.k_start}) must be at least k ({self.k})")
        return self


class AnnealedTopK(Encoder):
    """Annealed TopK SAE: keep the k_t largest ReLU(p) per row, k_t falling linearly from k_start to k."""

    Config = AnnealedTopKConfig
    contract = 1  # the version of the hsae.encoders contract this class was written for

    def __init__(self, config=None, *, n_inputs: int, n_latents: int):
        super().__init__(config, n_inputs=n_inputs, n_latents=n_latents)
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def current_k(self) -> int:
        """k_t of the module docstring (k in eval mode)."""
        cfg = self.config
        if not self.training:
            return cfg.k
        done = min(1.0, int(self.batches_seen) / cfg.anneal_batches)
        return round(cfg.k_start + (cfg.k - cfg.k_start) * done)

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        pre = torch.relu(proj + b_enc)
        k = min(self.current_k(), pre.shape[-1])
        top, index = pre.topk(k, dim=-1)
        z = torch.zeros_like(pre).scatter(-1, index, top)
        if self.training:
            self.batches_seen += 1
        return Encoding(z, z.new_zeros(z.shape[0]))
