"""Packing numbers of sparse code sets (paper, Lemmas B.2-B.3), in log space, and explicit packings.

``Σ(n, k, R) = {z ∈ R^n : ||z||_0 <= k, ||z||_2 <= R}`` is the set of ``k``-sparse codes of norm at most ``R``.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from scipy.spatial.distance import pdist

from hsae.errors import BadInput

_EXACT_SUM_LIMIT = 4096
"""Below this many factors ``log C(n, k)`` is summed term by term (exact for huge ``n``); above it, lgamma."""


def _check_positive(name: str, value: float) -> float:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise BadInput(f"{name} must be a finite positive number, got {value!r}")
    return float(value)


def _check_sparsity(width: int, sparsity: int, width_name: str, sparsity_name: str) -> None:
    for name, value in ((width_name, width), (sparsity_name, sparsity)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadInput(f"{name} must be an integer, got {value!r}")
    if not 1 <= sparsity <= width:
        raise BadInput(f"expected 1 <= {sparsity_name} <= {width_name}, got {sparsity_name}={sparsity}, {width_name}={width}")


def log_binomial(n: int, k: int) -> float:
    """``log C(n, k)`` for integers ``0 <= k <= n``, accurate also for astronomically large ``n``.

    With ``j = min(k, n − k)`` small it is ``Σ_{i<j} log(n − i) − log j!``, avoiding the cancellation of
    ``lgamma(n+1) − lgamma(n−k+1)``; otherwise the lgamma form.
    """
    if not 0 <= k <= n:
        raise BadInput(f"log_binomial needs 0 <= k <= n, got n={n}, k={k}")
    smaller = min(k, n - k)
    if smaller <= _EXACT_SUM_LIMIT:
        return math.fsum(math.log(n - i) for i in range(smaller)) - math.lgamma(smaller + 1)
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def log_sparse_packing_lower(n: int, k: int, radius: float, delta: float, c: float) -> float:
    """Lemma B.2: ``log [C(n, k) (c R / δ)^k]``, the claimed size of some δ-separated subset of ``Σ(n, k, R)``."""
    _check_sparsity(n, k, "n", "k")
    ratio = _check_positive("c", c) * _check_positive("R", radius) / _check_positive("delta", delta)
    return log_binomial(n, k) + k * math.log(ratio)


def log_sparse_packing_upper(m: int, k_prime: int, radius: float, delta: float) -> float:
    """Lemma B.3: ``log [C(m, k') (1 + 2R'/δ')^{k'}]``, an upper bound on every δ'-separated subset of ``Σ(m, k', R')``.

    Volume argument per support ``T`` (``|T| = k'``): balls of radius ``δ'/2`` around the points are disjoint
    and lie in the ``k'``-ball of radius ``R' + δ'/2``, so at most ``((R' + δ'/2)/(δ'/2))^{k'}`` points.
    """
    _check_sparsity(m, k_prime, "m", "k_prime")
    ratio = _check_positive("R_prime", radius) / _check_positive("delta_prime", delta)
    return log_binomial(m, k_prime) + k_prime * math.log1p(2.0 * ratio)


def sparse_lattice_candidates(width: int, sparsity: int, radius: float, spacing: float) -> np.ndarray:
    """Every point of ``Σ(width, sparsity, radius)`` whose coordinates on one support lie on the grid ``spacing · Z``.

    A dense, structured candidate set for explicit packings (it meets the Lemma B.3 bound with equality
    along each coordinate axis when ``sparsity = 1``). Rows are points; duplicates across supports removed.
    """
    _check_sparsity(width, sparsity, "width", "sparsity")
    steps = int(math.floor(_check_positive("radius", radius) / _check_positive("spacing", spacing)))
    offsets = np.array(list(itertools.product(range(-steps, steps + 1), repeat=sparsity)), dtype=np.float64) * spacing
    offsets = offsets[np.linalg.norm(offsets, axis=1) <= radius * (1 + 1e-12)]
    points = []
    for support in itertools.combinations(range(width), sparsity):
        block = np.zeros((offsets.shape[0], width))
        block[:, list(support)] = offsets
        points.append(block)
    return np.unique(np.concatenate(points), axis=0)


def random_sparse_points(rng: np.random.Generator, count: int, width: int, sparsity: int, radius: float) -> np.ndarray:
    """``(count, width)`` points of ``Σ(width, sparsity, radius)``: a random support, a uniform point of the ball on it."""
    _check_sparsity(width, sparsity, "width", "sparsity")
    points = np.zeros((count, width))
    for row in points:
        support = rng.choice(width, size=sparsity, replace=False)
        direction = rng.standard_normal(sparsity)
        direction /= np.linalg.norm(direction)
        row[support] = direction * radius * rng.uniform() ** (1.0 / sparsity)
    return points


def greedy_packing(candidates: np.ndarray, delta: float) -> np.ndarray:
    """Rows of ``candidates`` kept greedily, in order, when at distance ``>= delta`` from every row kept so far."""
    _check_positive("delta", delta)
    kept: list[np.ndarray] = []
    for point in np.asarray(candidates, dtype=np.float64):
        if not kept or np.min(np.linalg.norm(np.asarray(kept) - point, axis=1)) >= delta:
            kept.append(point)
    return np.asarray(kept).reshape(len(kept), -1)


def min_pairwise_distance(points: np.ndarray) -> float:
    """``min_{a≠b} ||x_a − x_b||`` over the rows (``inf`` for fewer than two rows), from explicit differences."""
    array = np.asarray(points, dtype=np.float64)
    if array.shape[0] < 2:
        return math.inf
    return float(np.min(pdist(array)))
