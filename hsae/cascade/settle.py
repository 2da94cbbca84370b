"""[hsae] Settling an upper level: its number of concepts and their members, from the atoms below.

Level l ≥ 2 groups the atoms of level l−1 (Eq. 7-9, 21). With more latents than concepts, the
reconstruction alone always prefers to split a family across the spare latents
(docs/cascade.md, "Settling the upper levels"), so at fixed steps the level is re-initialised
from a clustering of the live atoms below whose size is chosen by the data:

1. average linkage of the live atoms, cut into ``n_l`` clusters (the level's width);
2. spherical k-means refinement: every atom joins its nearest cluster mean;
3. while two clusters are *indistinct*, merge the most similar pair and refine again;
4. (``cousins``, on by default) again from the partition of step 2, as step 3 but a pair must also
   have a ratio x_ce / √(w_c w_e) (below) above a boundary midway between the level's two kinds
   of pair: the median ratio of the pairs step 3 merged, when it merged them (halves of one
   family, about 1 less what the clustering's choice of tight halves takes off), and ρ̂, the
   median ratio of the related pairs step 3 kept apart (cousins, s'² in a planted tree whose
   parents are at cosine s'). The noise test alone merges by default, so a family of one or two
   members, whose few pairs cannot tell it from a cousin family, is merged into one of its
   cousins; the level's own pairs say where the boundary lies.

Similarities are always measured between the unit level-1 atoms beneath: an atom of level
l−1 ≥ 2 stands for the mean of the level-1 atoms of its cluster, and two such means have as
product the mean cosine between their atoms (average linkage), which does not shrink with the
number of children the way the cosine of two cluster centroids does.

The noise model. An item of a family is x_i = μ + r_i: a common part μ (|μ|² = w, the family's
*cohesion*, its mean pairwise similarity) plus a residual r_i pointing in a random direction of
R^d with |r_i|² = q_i − w (q_i = |x_i|², 1 for a unit atom), as in a planted tree where a child
is s · parent plus an independent residual. For clusters c and e (n_c, n_e members, cohesions
w_c, w_e, mean residual energies σ²_c, σ²_e, cross-similarity x_ce = mean over member pairs):

* the *gap* G = √(w_c w_e) − x_ce has mean 0 when c and e are halves of one family, and, since the
  terms μ·r_i cancel between a cluster's cohesion and its cross-similarity, variance

      d · Var G = ¼ (v_c + v_e) + σ²_c σ²_e / (n_c n_e) + t_c + t_e,
      v_c = 2 σ⁴_c / (n_c (n_c − 1)),   t_c = 0;   a singleton: v_c = 0, t_c = w σ²_c

  (a singleton has no pairs of its own: its cohesion is the median cohesion of the clusters with
  two or more members, or, while there are fewer than three of those, the median over items of
  the similarity to their nearest other item; but never more than its own item's similarity to
  its nearest other item, since a family's cohesion, a mean over its pairs, is at most about the
  similarity of a member to its closest relative, and families differ in cohesion. Its own μ·r_i
  no longer cancels);
* the cross-similarity of two *unrelated* clusters (μ_c · μ_e = 0) has mean 0 and variance
  d · Var x_ce = w_c σ²_e / n_e + w_e σ²_c / n_c + σ²_c σ²_e / (n_c n_e).

Two clusters are *indistinct* when they are related, x_ce > z · SD(x_ce), and their gap is within
noise, G < z_n · SD(G). The clustering chose the split of c ∪ e that makes them look most apart,
the best of its 2^(n−1) − 1 two-way splits (n = n_c + n_e), so the gap is tested at the z_n of a
one-sided test at level α = 1 − Φ(z) shared among them (Bonferroni): 1 − Φ(z_n) = α / (2^(n−1) − 1);
z_n = z for two singletons, z + 0.63 for n = 4 and z + 2.02 for n = 12 at z = 2.5 (docs/cascade.md,
"Why a noise test").

Optionally (``ratio``, off by default) two related clusters are also indistinct when
x_ce ≥ ρ · √(w_c w_e): siblings have ratio ≈ 1, cousins whose parents are at cosine s' ≈ s'².

The level's decoder then holds the normalised cluster means, its encoder the same rows, and its
``b_dec`` stays zero from then on (a settled level is a spherical k-means of unit atoms; a learned
offset would tilt the cosines its clusters were chosen by), and the latents beyond the cluster
count are *pruned*: they can never fire (``PRUNED_BIAS``), so they never reach the level above.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform
from scipy.special import log_ndtr, ndtri_exp
from torch import nn

PRUNED_BIAS = -1.0e4
"""b_enc of a pruned latent: its pre-activation never wins a TopK slot nor passes a ReLU."""

REFINE_ITERATIONS = 20
MIN_REFERENCE_CLUSTERS = 3
MIN_COUSIN_PAIRS = 3
"""Pairs of each kind (merged by step 3, related and kept apart) that a second pass needs."""


def _unit_rows(a: np.ndarray) -> np.ndarray:
    return a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)


def refine(items: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Spherical k-means from ``labels``: each item moves to the cluster whose normalised mean
    it has the largest product with, until nothing moves; returns labels 0..k−1 (none empty)."""
    labels = np.unique(labels, return_inverse=True)[1]
    for _ in range(REFINE_ITERATIONS):
        means = np.zeros((labels.max() + 1, items.shape[1]))
        np.add.at(means, labels, items)
        moved = (items @ _unit_rows(means).T).argmax(1)
        moved = np.unique(moved, return_inverse=True)[1]
        if np.array_equal(moved, labels):
            break
        labels = moved
    return labels


def split_z(z: float, n: np.ndarray) -> np.ndarray:
    """z_n with 1 − Φ(z_n) = (1 − Φ(z)) / (2^(n−1) − 1): the one-sided level of ``z`` shared among
    the two-way splits of n items (n ≥ 2)."""
    n = np.asarray(n, dtype=np.float64)
    log_splits = (n - 1) * np.log(2.0) + np.log1p(-np.exp2(1.0 - n))
    return -ndtri_exp(log_ndtr(-z) - log_splits)


@dataclass(frozen=True)
class PairStatistics:
    """Every pair of clusters of a labelling (k × k arrays; module docstring): ``cross`` x_ce,
    ``reference`` √(w_c w_e), ``related`` x_ce > z · SD(x_ce), ``within_noise`` G < z_n · SD(G)."""

    cross: np.ndarray
    reference: np.ndarray
    related: np.ndarray
    within_noise: np.ndarray

    @property
    def ratio(self) -> np.ndarray:
        """x_ce / √(w_c w_e): about 1 for halves of one family, s'² for cousins under parents at s'."""
        return self.cross / self.reference


def pair_statistics(similarity: np.ndarray, labels: np.ndarray, ratio: float | None, z: float, dim: int,
                    nearest: np.ndarray) -> PairStatistics:
    """The noise model of the module docstring on the clusters ``labels`` of items whose products
    are ``similarity``; ``nearest``: each item's similarity to its nearest other item (its median
    is a singleton's cohesion while fewer than MIN_REFERENCE_CLUSTERS clusters have two members;
    its own value bounds a singleton's cohesion)."""
    k = labels.max() + 1
    member = np.zeros((k, len(labels)))
    member[labels, np.arange(len(labels))] = 1.0
    size = member.sum(1)
    sums = member @ similarity @ member.T
    pairs = size * (size - 1)
    multi = pairs > 0
    self_sums = member @ np.diag(similarity)  # Σ over members of their self-similarity (1 for unit items)
    cohesion = np.full(k, np.nan)
    cohesion[multi] = (np.diag(sums)[multi] - self_sums[multi]) / pairs[multi]
    fallback = float(np.median(cohesion[multi] if multi.sum() >= MIN_REFERENCE_CLUSTERS else nearest))
    own_nearest = np.zeros(k)
    own_nearest[labels] = nearest  # a singleton's one item
    cohesion = np.clip(np.where(multi, cohesion, np.minimum(fallback, own_nearest)), 1e-6, None)
    cross = sums / np.outer(size, size)
    spread = np.clip(self_sums / size - cohesion, 0.0, None)  # σ²: residual energy per member
    own_pairs = np.where(multi, 2.0 * spread**2 / np.maximum(pairs, 1.0), 0.0)  # v_c
    singleton = np.where(multi, 0.0, cohesion * spread)  # t_c
    per_member = spread / size
    gap_variance = (0.25 * (own_pairs[:, None] + own_pairs[None, :]) + np.outer(per_member, per_member)
                    + singleton[:, None] + singleton[None, :]) / dim
    cross_variance = (np.outer(cohesion, per_member) + np.outer(per_member, cohesion)
                      + np.outer(per_member, per_member)) / dim
    reference = np.sqrt(np.outer(cohesion, cohesion))
    within_noise = reference - cross < split_z(z, size[:, None] + size[None, :]) * np.sqrt(gap_variance)
    if ratio is not None:
        within_noise |= cross >= ratio * reference
    return PairStatistics(cross, reference, cross > z * np.sqrt(cross_variance), within_noise)


def indistinct(stats: PairStatistics, boundary: float | None = None):
    """The most similar pair of clusters that is indistinct (module docstring), or None; with a
    ``boundary`` the pair's ratio x_ce / √(w_c w_e) must also exceed it."""
    same = stats.related & stats.within_noise
    if boundary is not None:
        same &= stats.ratio > boundary
    score = np.where(same, stats.ratio, -np.inf)
    np.fill_diagonal(score, -np.inf)
    best = np.unravel_index(np.argmax(score), score.shape)
    return None if not np.isfinite(score[best]) else best


def cousin_ratio(stats: PairStatistics) -> float | None:
    """ρ̂: the median ratio x_ce / √(w_c w_e) of the related pairs of distinct clusters, or None
    with fewer than MIN_COUSIN_PAIRS of them."""
    upper = np.triu(stats.related, 1)
    return float(np.median(stats.ratio[upper])) if upper.sum() >= MIN_COUSIN_PAIRS else None


def linkage_clusters(items: np.ndarray, count: int) -> np.ndarray:
    """Labels 0..k−1 (k ≤ ``count``) of two or more ``items``: their average linkage under the
    distance 1 − similarity, cut into at most ``count`` clusters and refined (:func:`refine`)."""
    distance = np.clip(1.0 - items @ items.T, 0.0, None)
    np.fill_diagonal(distance, 0.0)
    tree = linkage(squareform(distance, checks=False), method="average")
    return refine(items, fcluster(tree, min(count, len(items)), "maxclust") - 1)


def merge_indistinct(items: np.ndarray, labels: np.ndarray, ratio: float | None, z: float,
                     boundary: float | None = None) -> tuple[np.ndarray, list[float]]:
    """From ``labels``, merge the most similar indistinct pair (:func:`indistinct`) and refine,
    until no pair is indistinct; returns the labels and the ratio of every merged pair when merged."""
    statistics = _pair_statistics_of(items, ratio, z)
    merged = []
    while labels.max() > 0:
        stats = statistics(labels)
        pair = indistinct(stats, boundary)
        if pair is None:
            break
        merged.append(float(stats.ratio[pair]))
        labels = refine(items, np.where(labels == pair[1], pair[0], labels))
    return labels, merged


def _pair_statistics_of(items: np.ndarray, ratio: float | None, z: float):
    """labels ↦ :func:`pair_statistics` of ``items`` under those labels."""
    similarity = items @ items.T
    nearest = np.max(similarity - 4.0 * np.eye(len(items)), axis=1)
    return lambda labels: pair_statistics(similarity, labels, ratio, z, items.shape[1], nearest)


def distinct_clusters(items: np.ndarray, start: int, ratio: float | None, z: float,
                      cousins: bool = True) -> np.ndarray:
    """Labels 0..k−1 of ``items`` with k ≤ ``start`` chosen by the rules of the module. An item
    is the mean of the unit level-1 atoms beneath it (a level-1 atom itself at level 2), so the
    similarity of two items, ``items @ items.T``, is the mean cosine between their atoms. With
    ``cousins``, a second pass from the same start (step 4 of the module)."""
    items = np.asarray(items, dtype=np.float64)
    n = len(items)
    if n <= 1:
        return np.zeros(n, dtype=np.int64)
    start_labels = linkage_clusters(items, start)
    labels, merged = merge_indistinct(items, start_labels, ratio, z)
    if cousins and labels.max() > 0 and len(merged) >= MIN_COUSIN_PAIRS:
        cousin = cousin_ratio(_pair_statistics_of(items, ratio, z)(labels))
        halves = float(np.median(merged))
        if cousin is not None and halves > cousin:
            labels, _ = merge_indistinct(items, start_labels, ratio, z, (halves + cousin) / 2)
    return labels.astype(np.int64)


def group_means(items: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Row k: the mean of the items labelled k (the items of the level above)."""
    means = np.zeros((labels.max() + 1, items.shape[1]))
    np.add.at(means, labels, items)
    return means / np.bincount(labels)[:, None]


def settle_bottom_up(atoms: np.ndarray, widths: list[int], ratio: float | None, z: float,
                     cousins: bool = True) -> list[np.ndarray]:
    """The upper levels of unit ``atoms`` settled one after another as the cascade settles them, with
    at most ``widths[i]`` concepts at level i + 2: each level's label of every atom."""
    items, mapping, found = np.asarray(atoms, dtype=np.float64), np.arange(len(atoms)), []
    for width in widths:
        labels = distinct_clusters(items, width, ratio, z, cousins)
        mapping = labels[mapping]
        found.append(mapping)
        items = group_means(items, labels)
    return found


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
        """Keep b_dec at zero and pruned latents silent: zero encoder rows, b_enc = PRUNED_BIAS."""
        sae.b_dec.zero_()
        dead = ~self.alive
        if dead.any():
            sae.W_enc[dead] = 0.0
            sae.b_enc[dead] = PRUNED_BIAS

    @torch.no_grad()
    def settle(self, sae, items: np.ndarray, ratio: float | None, z: float, cousins: bool = True) -> np.ndarray:
        """Re-initialise ``sae`` (a level) from the distinct clusters of ``items`` (one per live
        atom of the level below: the mean of the unit level-1 atoms beneath it): decoder columns
        and encoder rows = the clusters' normalised means, b_enc = 0; the remaining latents are
        pruned. Returns the labels (cluster k is latent k)."""
        labels = distinct_clusters(items, sae.n_latents, ratio, z, cousins)
        centroids = torch.as_tensor(_unit_rows(group_means(items, labels)), dtype=sae.W_dec.dtype,
                                    device=sae.W_dec.device)
        k = len(centroids)
        sae.W_dec[:, :k] = centroids.t()
        sae.W_enc[:k] = centroids
        sae.b_enc[:k] = 0.0
        self.alive.zero_()
        self.alive[:k] = True
        self.enforce(sae)
        return labels
