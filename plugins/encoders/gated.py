"""Gated encoder (spec §5): a gate path deciding which latents fire and a magnitude path
sharing its weights, W_mag = exp(r_mag) ⊙ W_gate."""

from __future__ import annotations

import torch

from hsae.interfaces.encoder import Encoder, Encoding, SAELensForm


class GatedEncoder(Encoder):
    """Gated SAE: z = 1[π_gate > 0] ⊙ ReLU(π_mag); S = ||ReLU(π_gate)||₁ (decoder-norm weighted) + aux loss."""

    saelens_architecture = "gated"

    def __init__(self, config=None, *, n_inputs: int, n_latents: int):
        super().__init__(config, n_inputs=n_inputs, n_latents=n_latents)
        self.r_mag = torch.nn.Parameter(torch.zeros(n_latents))
        self.b_mag = torch.nn.Parameter(torch.zeros(n_latents))

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        gate = proj + b_enc  # π_gate = W_gate (x − b_dec) + b_gate, with W_gate = W_enc
        magnitude = self.r_mag.exp() * proj + self.b_mag
        z = (gate > 0).to(proj.dtype) * torch.relu(magnitude)
        gate_code = torch.relu(gate)
        return Encoding(z, gate_code @ dec_norm, {"gate_code": gate_code})

    def saelens_form(self, b_enc):
        return SAELensForm("gated", {"b_gate": b_enc, "r_mag": self.r_mag, "b_mag": self.b_mag})

    @classmethod
    def from_saelens(cls, tensors):
        return tensors["b_gate"], {"r_mag": tensors["r_mag"], "b_mag": tensors["b_mag"]}

    def aux_loss(self, enc, x, x_hat, sae):
        """||x − (W_dec ReLU(π_gate) + b_dec)||² with W_dec, b_dec frozen (mean over rows)."""
        recon = enc.extras["gate_code"] @ sae.W_dec.detach().t() + sae.b_dec.detach()
        return ((x - recon) ** 2).sum(-1).mean()
