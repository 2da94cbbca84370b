"""TopK encoder (spec §5) with the optional AuxK loss for dead latents."""

from __future__ import annotations

import torch
from pydantic import Field

from hsae.interfaces.encoder import Encoder, Encoding
from hsae.interfaces.plugin import PluginConfig


class TopKConfig(PluginConfig):
    k: int = Field(32, ge=1, description="non-zeros kept per row")
    aux_k: int = Field(0, ge=0, description="dead latents used by the AuxK loss (0: off)")
    aux_coef: float = Field(1 / 32, ge=0, description="weight of the AuxK loss")
    dead_after: int = Field(10_000_000, ge=1, description="rows without firing after which a latent counts as dead for AuxK")


def keep_topk(values: torch.Tensor, k: int) -> torch.Tensor:
    """Zero all but the k largest entries of each row of ReLU(values)."""
    k = min(k, values.shape[-1])
    top, idx = values.topk(k, dim=-1)
    return torch.zeros_like(values).scatter(-1, idx, torch.relu(top))


class TopKEncoder(Encoder):
    """TopK SAE: keep the k largest entries of ReLU(p) per row; no S term; optional AuxK."""

    Config = TopKConfig

    def __init__(self, config=None, *, n_inputs: int, n_latents: int):
        super().__init__(config, n_inputs=n_inputs, n_latents=n_latents)
        self.register_buffer("rows_since_fired", torch.zeros(n_latents, dtype=torch.long))

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        pre = proj + b_enc
        z = keep_topk(pre, self.config.k)
        if self.training and self.config.aux_k:
            with torch.no_grad():
                fired = (z > 0).any(0)
                self.rows_since_fired.add_(z.shape[0]).masked_fill_(fired, 0)
        return Encoding(z, z.new_zeros(z.shape[0]), {"pre": pre})

    def aux_loss(self, enc, x, x_hat, sae):
        """AuxK: the top ``aux_k`` dead latents reconstruct the residual x − x_hat."""
        if not (self.training and self.config.aux_k):
            return None
        dead = self.rows_since_fired >= self.config.dead_after
        if not dead.any():
            return None
        pre = enc.extras["pre"].masked_fill(~dead, float("-inf"))
        z_aux = keep_topk(pre, min(self.config.aux_k, int(dead.sum())))
        residual = (x - x_hat).detach()
        err = ((residual - z_aux @ sae.W_dec.t()) ** 2).sum(-1).mean()
        return self.config.aux_coef * err
