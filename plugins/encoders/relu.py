"""ReLU encoder with the decoder-norm-weighted L1 penalty (spec §5)."""

from __future__ import annotations

import torch

from hsae.interfaces.encoder import Encoder, Encoding, SAELensForm


class ReLUEncoder(Encoder):
    """ReLU SAE: σ(p) = ReLU(p), S(z) = Σ_j z_j ||W_dec[:, j]|| (L1 sparsity); SAELens's 'standard'."""

    saelens_architecture = "standard"

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        z = torch.relu(proj + b_enc)
        return Encoding(z, z @ dec_norm)

    def saelens_form(self, b_enc):
        return SAELensForm("standard", {"b_enc": b_enc})

    @classmethod
    def from_saelens(cls, tensors):
        return tensors["b_enc"], {}
