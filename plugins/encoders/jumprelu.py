"""JumpReLU encoder (spec §5): learned per-latent thresholds trained by straight-through
pseudo-derivatives with a rectangle kernel of bandwidth ε."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from hsae.interfaces.encoder import Encoder, Encoding, SAELensForm
from hsae.interfaces.plugin import PluginConfig


class JumpReLUConfig(PluginConfig):
    initial_threshold: float = Field(0.001, gt=0, description="θ_j at initialisation")
    bandwidth: float = Field(0.001, gt=0, description="ε, width of the rectangle kernel")


def _rectangle(u: torch.Tensor) -> torch.Tensor:
    return ((u > -0.5) & (u < 0.5)).to(u.dtype)


class _JumpReLU(torch.autograd.Function):
    """z = p · H(p − θ); ∂z/∂p = H(p − θ); ∂z/∂θ = −(θ/ε) K((p − θ)/ε)."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return pre * (pre > threshold)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_pre = grad * (pre > threshold)
        grad_threshold = -(threshold / eps) * _rectangle((pre - threshold) / eps) * grad
        return grad_pre, grad_threshold.sum(0), None


class _Step(torch.autograd.Function):
    """H(p − θ); no gradient to p; ∂H/∂θ = −(1/ε) K((p − θ)/ε)."""

    @staticmethod
    def forward(ctx, pre, threshold, bandwidth):
        ctx.save_for_backward(pre, threshold)
        ctx.bandwidth = bandwidth
        return (pre > threshold).to(pre.dtype)

    @staticmethod
    def backward(ctx, grad):
        pre, threshold = ctx.saved_tensors
        eps = ctx.bandwidth
        grad_threshold = -(1.0 / eps) * _rectangle((pre - threshold) / eps) * grad
        return None, grad_threshold.sum(0), None


class JumpReLUEncoder(Encoder):
    """JumpReLU SAE: σ(p) = p·H(p − θ_j), θ = exp(log θ) learned; S(z) = Σ_j H(p_j − θ_j) (L0)."""

    Config = JumpReLUConfig
    saelens_architecture = "jumprelu"

    def __init__(self, config=None, *, n_inputs: int, n_latents: int):
        super().__init__(config, n_inputs=n_inputs, n_latents=n_latents)
        self.log_threshold = torch.nn.Parameter(torch.full((n_latents,), math.log(self.config.initial_threshold)))

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        pre = proj + b_enc
        threshold = self.log_threshold.exp()
        z = _JumpReLU.apply(pre, threshold, self.config.bandwidth)
        l0 = _Step.apply(pre, threshold, self.config.bandwidth).sum(-1)
        return Encoding(z, l0)

    def saelens_form(self, b_enc):
        return SAELensForm("jumprelu", {"b_enc": b_enc, "threshold": self.log_threshold.exp()})

    @classmethod
    def from_saelens(cls, tensors):
        """log θ from SAELens's θ (θ ≤ 0 becomes a tiny positive threshold: the codes are ≥ 0 either way)."""
        threshold = tensors["threshold"].clamp_min(torch.finfo(tensors["threshold"].dtype).tiny)
        return tensors["b_enc"], {"log_threshold": threshold.log()}
