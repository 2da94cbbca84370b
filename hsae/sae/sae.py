"""One sparse autoencoder (spec §1, Eq. 1-3) with a pluggable encoder (spec §5).

    z     = σ(W_enc (x − b_dec) + b_enc)          (1)
    x_hat = W_dec z + b_dec                         (2)
    L     = ||x − x_hat||² + λ_s · S(z)             (3)

Shapes follow the spec: ``W_enc`` (n, d), ``W_dec`` (d, n); inputs are rows (B, d).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hsae.interfaces.encoder import Encoder, Encoding
from hsae.sae.init import decoder_bias


@dataclass
class SAEOutput:
    encoding: Encoding
    x_hat: torch.Tensor

    @property
    def z(self) -> torch.Tensor:
        return self.encoding.z


class SAE(nn.Module):
    """An SAE of width ``n_latents`` on inputs of width ``n_inputs``; σ and S from ``encoder``."""

    def __init__(self, n_inputs: int, n_latents: int, encoder: Encoder, normalize_decoder: bool = True):
        super().__init__()
        self.n_inputs, self.n_latents = n_inputs, n_latents
        self.normalize_decoder = normalize_decoder
        self.W_enc = nn.Parameter(torch.empty(n_latents, n_inputs))
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.W_dec = nn.Parameter(torch.empty(n_inputs, n_latents))
        self.b_dec = nn.Parameter(torch.zeros(n_inputs))
        self.encoder = encoder
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Decoder columns: random unit vectors; encoder: the decoder's transpose; biases zero."""
        w = torch.randn(self.n_inputs, self.n_latents, generator=generator)
        self.W_dec.copy_(w / w.norm(dim=0, keepdim=True))
        self.W_enc.copy_(self.W_dec.t())
        self.b_enc.zero_()
        self.b_dec.zero_()

    @torch.no_grad()
    def init_b_dec(self, inputs: torch.Tensor, method: str = "geometric_median") -> None:
        """Set ``b_dec`` from a sample of this SAE's inputs (rows)."""
        self.b_dec.copy_(decoder_bias(inputs, method).to(self.b_dec))

    def decoder_norms(self) -> torch.Tensor:
        return self.W_dec.norm(dim=0)

    def encode(self, x: torch.Tensor) -> Encoding:
        """Eq. 1: the encoder plugin applies σ to W_enc (x − b_dec) (+ b_enc)."""
        proj = (x - self.b_dec) @ self.W_enc.t()
        return self.encoder.encode(proj, self.b_enc, self.decoder_norms())

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 2."""
        return z @ self.W_dec.t() + self.b_dec

    def forward(self, x: torch.Tensor) -> SAEOutput:
        enc = self.encode(x)
        return SAEOutput(enc, self.decode(enc.z))

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the component of each decoder column's gradient along the column (unit-norm mode)."""
        if not self.normalize_decoder or self.W_dec.grad is None:
            return
        w = self.W_dec / self.W_dec.norm(dim=0, keepdim=True).clamp_min(1e-12)
        g = self.W_dec.grad
        g.sub_(w * (g * w).sum(0, keepdim=True))

    @torch.no_grad()
    def renormalize_decoder(self) -> None:
        """W_dec[:, j] ← W_dec[:, j] / ||W_dec[:, j]|| (spec §1, after every optimizer step)."""
        if self.normalize_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=0, keepdim=True).clamp_min(1e-12))
