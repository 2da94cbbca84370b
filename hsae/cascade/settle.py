"""[hsae] Settling an upper level: its number of concepts and their members, from the atoms below.

Level l ≥ 2 groups the atoms of level l−1 (Eq. 7-9, 21). With more latents than concepts, the
reconstruction alone always prefers to split a family across the spare latents
(docs/cascade.md, "Settling the upper levels"), so at fixed steps the level is re-initialised
from a clustering of the live atoms below whose size is chosen by the data:

1. average linkage (cosine) of the live atoms, cut into ``n_l`` clusters (the level's width);
2. spherical k-means refinement: every atom joins its nearest cluster mean;
3. while two clusters are *indistinct*, merge the most similar pair and refine again.

Clusters c and e (sizes n_c, n_e) have the cross-similarity x_ce = mean cosine over their
member pairs, and each has the cohesion w_c = mean cosine over its own member pairs (a
singleton takes the median cohesion of the others). They are indistinct when

    x_ce ≥ ρ · √(w_c w_e)                                     (the ratio rule)
    or  x_ce > 0 and x_ce − √(w_c w_e) > −z · (1 − √(w_c w_e)) / √(d · n_c n_e)   (the noise rule)

The ratio rule is scale-free: children at cosine s from a parent have pairwise cosine s², two
sibling families of a grandparent at cosine s' meet at s² s'², so the ratio tells siblings
(≈ 1) from cousins (s'²) at any level and any data scale. The noise rule keeps two clusters
together when their difference is within z standard errors of what random residuals in R^d give
(a child is s · parent plus an independent residual), which matters when s is small.

The level's decoder then holds the normalised cluster means, its encoder the same rows, its
``b_dec`` is zero (a shared offset would tilt the cosines the clusters were chosen by), and the latents beyond the cluster
count are *pruned*: they can never fire (``PRUNED_BIAS``), so they never reach the level above.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from torch import nn

PRUNED_BIAS = -1.0e4
"""b_enc of a pruned latent: its pre-activation never wins a TopK slot nor passes a ReLU."""

REFINE_ITERATIONS = 20


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def refine(atoms: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Spherical k-means from ``labels`` on unit rows: each atom moves to its most similar
    cluster mean until nothing moves; returns labels 0..k−1 (no empty cluster)."""
    labels = np.unique(labels, return_inverse=True)[1]
    for _ in range(REFINE_ITERATIONS):
        means = np.zeros((labels.max() + 1, atoms.shape[1]))
        np.add.at(means, labels, atoms)
        moved = (atoms @ _unit_rows(means).T).argmax(1)
        moved = np.unique(moved, return_inverse=True)[1]
        if np.array_equal(moved, labels):
            break
        labels = moved
    return labels


def indistinct(similarity: np.ndarray, labels: np.ndarray, ratio: float, z: float, dim: int):
    """The most similar pair of clusters that is indistinct (ratio or noise rule), or None."""
    k = labels.max() + 1
    member = np.zeros((k, len(labels)))
    member[labels, np.arange(len(labels))] = 1.0
    size = member.sum(1)
    sums = member @ similarity @ member.T
    pairs = size * (size - 1)
    cohesion = np.full(k, np.nan)
    multi = pairs > 0
    cohesion[multi] = (np.diag(sums)[multi] - size[multi]) / pairs[multi]
    fallback = float(np.median(cohesion[multi])) if multi.any() else 1.0
    cohesion = np.clip(np.where(multi, cohesion, fallback), 1e-6, 1.0)
    cross = sums / np.outer(size, size)
    reference = np.sqrt(np.outer(cohesion, cohesion))
    noise = (1.0 - reference) / np.sqrt(dim * np.outer(size, size))
    same = (cross >= ratio * reference) | ((cross > 0) & (cross - reference > -z * noise))
    score = np.where(same, cross / reference, -np.inf)
    np.fill_diagonal(score, -np.inf)
    best = np.unravel_index(np.argmax(score), score.shape)
    return None if not np.isfinite(score[best]) else best


def distinct_clusters(atoms: np.ndarray, start: int, ratio: float, z: float) -> np.ndarray:
    """Labels 0..k−1 of ``atoms`` (rows) with k ≤ ``start`` chosen by the rules of the module."""
    atoms = _unit_rows(np.asarray(atoms, dtype=np.float64))
    n = len(atoms)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    tree = linkage(atoms, method="average", metric="cosine")
    labels = refine(atoms, fcluster(tree, min(start, n), "maxclust") - 1)
    similarity = atoms @ atoms.T
    while labels.max() > 0:
        pair = indistinct(similarity, labels, ratio, z, atoms.shape[1])
        if pair is None:
            break
        labels = refine(atoms, np.where(labels == pair[1], pair[0], labels))
    return labels.astype(np.int64)


class Concepts(nn.Module):
    """Which latents of a settled level are in use (``alive``); the others are pruned."""

    def __init__(self, n_latents: int):
        super().__init__()
        self.register_buffer("alive", torch.ones(n_latents, dtype=torch.bool))

    @property
    def count(self) -> int:
        return int(self.alive.sum())

    @torch.no_grad()
    def enforce(self, sae) -> None:
        """Keep pruned latents silent: zero encoder rows, b_enc = PRUNED_BIAS."""
        dead = ~self.alive
        if dead.any():
            sae.W_enc[dead] = 0.0
            sae.b_enc[dead] = PRUNED_BIAS

    @torch.no_grad()
    def settle(self, sae, atoms: torch.Tensor, ratio: float, z: float) -> None:
        """Re-initialise ``sae`` (a level) from the distinct clusters of ``atoms`` (rows, the
        live atoms of the level below): decoder columns and encoder rows = normalised cluster
        means of ``atoms``, b_enc = b_dec = 0; the remaining latents are pruned."""
        centred = atoms.detach().cpu().double().numpy()
        labels = distinct_clusters(centred, sae.n_latents, ratio, z)
        means = np.zeros((labels.max() + 1, centred.shape[1]))
        np.add.at(means, labels, _unit_rows(centred))
        centroids = torch.as_tensor(_unit_rows(means), dtype=sae.W_dec.dtype, device=sae.W_dec.device)
        k = len(centroids)
        sae.W_dec[:, :k] = centroids.t()
        sae.W_enc[:k] = centroids
        sae.b_enc[:k] = 0.0
        sae.b_dec.zero_()
        self.alive.zero_()
        self.alive[:k] = True
        self.enforce(sae)
