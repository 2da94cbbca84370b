"""Initialisation helpers: random unit decoder columns and the decoder bias from data."""

from __future__ import annotations

import torch


def geometric_median(points: torch.Tensor, iters: int = 100, tol: float = 1e-6) -> torch.Tensor:
    """argmin_y Σ_i ||x_i − y|| by Weiszfeld's iteration, started at the mean."""
    points = points.detach().to(torch.float64)
    y = points.mean(0)
    for _ in range(iters):
        dist = (points - y).norm(dim=1).clamp_min(1e-12)
        weights = 1.0 / dist
        y_next = (weights[:, None] * points).sum(0) / weights.sum()
        if (y_next - y).norm() <= tol * (1.0 + y.norm()):
            y = y_next
            break
        y = y_next
    return y.to(torch.float32)


def decoder_bias(points: torch.Tensor, method: str) -> torch.Tensor:
    """b_dec from a sample of the level's inputs: 'geometric_median', 'mean' or 'zeros'."""
    if method == "geometric_median":
        return geometric_median(points)
    if method == "mean":
        return points.detach().float().mean(0)
    if method == "zeros":
        return torch.zeros(points.shape[1])
    raise ValueError(f"unknown b_dec initialisation {method!r}")
