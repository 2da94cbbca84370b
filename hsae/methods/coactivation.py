"""Parents by co-activation (spec §6): the rule that turns two independently trained sets of
units into a hierarchy.

    π(i) = argmax_k #{n : a_i(n) > 0 ∧ b_k(n) > 0}

over the evaluation rows ``n``, for lower units ``a_i`` and upper units ``b_k``. The counts are
an ``(n_lower, n_upper)`` matrix accumulated chunk by chunk as ``1[a > 0]ᵀ · 1[b > 0]``; ties
go to the lowest ``k``, and a unit that never fires together with any upper unit has no
parent (−1).
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from hsae.cascade.hierarchy import NO_PARENT
from hsae.errors import BadInput


class CoactivationCounts:
    """The running matrix ``C[i, k] = #{n : a_i(n) > 0 ∧ b_k(n) > 0}``."""

    def __init__(self, n_lower: int, n_upper: int):
        self.counts = torch.zeros(n_lower, n_upper, dtype=torch.float64)

    @torch.no_grad()
    def add(self, lower: torch.Tensor, upper: torch.Tensor) -> None:
        """Count one chunk: ``lower`` (rows, n_lower) and ``upper`` (rows, n_upper) codes of the same rows."""
        if lower.ndim != 2 or upper.ndim != 2 or lower.shape[0] != upper.shape[0]:
            raise BadInput(f"co-activation: codes of the same rows expected, got shapes "
                           f"{tuple(lower.shape)} and {tuple(upper.shape)}")
        if (lower.shape[1], upper.shape[1]) != tuple(self.counts.shape):
            raise BadInput(f"co-activation: expected {tuple(self.counts.shape)} units, got "
                           f"{lower.shape[1]} and {upper.shape[1]}")
        # A chunk's counts are at most its row count, exact in float32 up to 2^24 rows.
        chunk = (lower > 0).float().t() @ (upper > 0).float()
        self.counts += chunk.to(device=self.counts.device, dtype=torch.float64)

    def parents(self) -> np.ndarray:
        """π(i) = argmax_k C[i, k] (lowest k on ties), −1 where row i is all zero."""
        return parents_from_counts(self.counts)


def parents_from_counts(counts: torch.Tensor) -> np.ndarray:
    """argmax per row with ties to the lowest index; −1 for a row without any co-activation."""
    best, index = counts.max(dim=1)
    return torch.where(best > 0, index, torch.full_like(index, NO_PARENT)).cpu().numpy().astype(np.int64)


def coactivation_parents(chunks: Iterable[list[torch.Tensor]], widths: list[int]) -> list[np.ndarray]:
    """[π_2, …, π_L] from chunks of per-level codes ``[z¹, …, z^L]`` of the same rows:
    π_l links level l−1 to level l by co-activation."""
    counters = [CoactivationCounts(widths[l - 1], widths[l]) for l in range(1, len(widths))]
    for codes in chunks:
        for l, counter in enumerate(counters, start=1):
            counter.add(codes[l - 1], codes[l])
    return [counter.parents() for counter in counters]
