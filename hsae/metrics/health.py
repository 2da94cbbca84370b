"""Per-level health of a dictionary: near-duplicate atoms (a sign of collapse)."""

from __future__ import annotations

import torch


@torch.no_grad()
def near_duplicate_pairs(W_dec: torch.Tensor, threshold: float = 0.95, chunk: int = 2048) -> int:
    """Number of pairs i < j of decoder columns with cosine > ``threshold``, in column chunks."""
    w = W_dec / W_dec.norm(dim=0, keepdim=True).clamp_min(1e-12)
    n = w.shape[1]
    count = 0
    for start in range(0, n, chunk):
        block = w[:, start:start + chunk].t() @ w[:, start:]  # rows i in chunk, columns j ≥ start
        rows = torch.arange(start, min(start + chunk, n), device=w.device)[:, None]
        cols = torch.arange(start, n, device=w.device)[None, :]
        count += int(((block > threshold) & (cols > rows)).sum())
    return count
