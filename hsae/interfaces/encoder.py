"""The encoder contract (spec §5): the activation σ, its sparsity term S and any auxiliary loss.

An encoder plugin is an ``nn.Module`` built once per SAE as ``cls(config, n_inputs=d,
n_latents=n)``. The SAE computes the projection ``W_enc (x − b_dec)`` (Eq. 1 without the bias)
and hands it to :meth:`Encoder.encode` with ``b_enc``; the plugin returns the sparse code.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import nn

from hsae.interfaces.plugin import Plugin, PluginConfig

if TYPE_CHECKING:
    from hsae.sae.sae import SAE


@dataclass
class Encoding:
    """What an encoder returns for a batch of B rows.

    z: (B, n) the sparse code. penalty: (B,) the sparsity term S(z) per row, before the
    sparsity coefficient (zeros for structurally sparse encoders). extras: tensors the
    encoder's :meth:`Encoder.aux_loss` needs later (e.g. the gate's pre-activations).
    """

    z: torch.Tensor
    penalty: torch.Tensor
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


class Encoder(Plugin, nn.Module):
    """Base of encoder plugins: maps pre-activations to a sparse code (spec §5)."""

    def __init__(self, config: PluginConfig | None = None, *, n_inputs: int, n_latents: int):
        nn.Module.__init__(self)
        Plugin.__init__(self, config)
        self.n_inputs = n_inputs
        self.n_latents = n_latents

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        """``proj`` = (x − b_dec) W_encᵀ, shape (B, n); ``dec_norm`` = ||W_dec[:, j]|| (n,)."""
        raise NotImplementedError

    def aux_loss(self, enc: Encoding, x: torch.Tensor, x_hat: torch.Tensor, sae: "SAE") -> torch.Tensor | None:
        """An auxiliary loss added to the level's loss (mean over rows), or None."""
        return None

    def sparsity_scale(self, step: int) -> float:
        """Multiplier of the sparsity coefficient at ``step`` (schedules such as P-annealing)."""
        return 1.0

    def config_summary(self) -> dict:
        """Plain data describing this encoder, saved in ``config.json``."""
        return {"name": getattr(self, "plugin_name", type(self).__name__), **self.config.model_dump()}
