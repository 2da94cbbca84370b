"""ReLU encoder with the decoder-norm-weighted L1 penalty (spec §5)."""

from __future__ import annotations

import torch

from hsae.interfaces.encoder import Encoder, Encoding


class ReLUEncoder(Encoder):
    """ReLU SAE: σ(p) = ReLU(p), S(z) = Σ_j z_j ||W_dec[:, j]|| (L1 sparsity)."""

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        z = torch.relu(proj + b_enc)
        return Encoding(z, z @ dec_norm)
