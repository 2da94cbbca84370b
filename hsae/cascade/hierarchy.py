"""Parent assignment π_l and the hierarchy as plain data (spec §4, Eq. 33, 42-43)."""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

NO_PARENT = -1


@contextmanager
def evaluating(module: torch.nn.Module):
    """Run ``module`` in eval mode (e.g. BatchTopK uses its threshold), then restore."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


def parents_from_codes(u: torch.Tensor) -> np.ndarray:
    """π(i) = argmax_k u_k(i); an all-zero code has no parent (−1). Ties go to the lowest index."""
    best, idx = u.max(dim=1)
    return torch.where(best > 0, idx, torch.full_like(idx, NO_PARENT)).cpu().numpy().astype(np.int64)


@torch.no_grad()
def assign_parents(cascade) -> list[np.ndarray]:
    """[π_2, …, π_L]: π_l maps every atom of level l−1 to a latent of level l (or −1)."""
    parents = []
    with evaluating(cascade):
        for l in range(2, cascade.depth + 1):
            atoms = cascade.atoms(l - 1)
            parents.append(parents_from_codes(cascade.level(l).encode(atoms).z))
    return parents


def children_of(parents: np.ndarray, n_parents: int) -> list[list[int]]:
    """C(k) = {i : π(i) = k} for k = 0..n_parents−1."""
    children: list[list[int]] = [[] for _ in range(n_parents)]
    for i, k in enumerate(parents.tolist()):
        if k != NO_PARENT:
            children[k].append(i)
    return children


def hierarchy_dict(parents: list[np.ndarray], widths: list[int]) -> dict:
    """Plain data: per level l ≥ 2, the parent of every level-(l−1) atom and the children of
    every level-l latent. ``widths`` = [n_1, …, n_L]."""
    levels = []
    for l, pi in enumerate(parents, start=2):
        children = children_of(pi, widths[l - 1])
        levels.append({
            "level": l,
            "n_latents": widths[l - 1],
            "parent": pi.tolist(),
            "children": {str(k): c for k, c in enumerate(children) if c},
            "orphans": int((pi == NO_PARENT).sum()),
        })
    return {"widths": list(widths), "levels": levels}
