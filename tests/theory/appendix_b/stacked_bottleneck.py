"""Why a stacked SAE with a sparser bottleneck cannot reconstruct uniformly (paper, Lemma B.1, Theorem B.1, Remark B.1).

Setting: inputs ``Σ(n, k, R)`` (``k``-sparse codes of the first SAE), an encoder ``f`` into the bottleneck
``Σ(m, k', R')``, an ``L``-Lipschitz decoder ``g``, and uniform reconstruction ``||x − g(f(x))|| <= η``.
"""

from __future__ import annotations

import math

import numpy as np

from hsae.errors import BadInput
from appendix_b.sparse_packing import log_sparse_packing_lower, log_sparse_packing_upper


def code_distance_lower_bound(input_distance, eta: float, lipschitz: float):
    """Lemma B.1, pairwise: ``||f(x) − f(x')|| >= (||x − x'|| − 2η) / L``.

    From ``||x − x'|| <= ||x − g(f(x))|| + ||g(f(x)) − g(f(x'))|| + ||g(f(x')) − x'|| <= 2η + L ||f(x) − f(x')||``.
    Works elementwise on arrays of input distances.
    """
    if not (math.isfinite(eta) and eta >= 0):
        raise BadInput(f"eta (the uniform reconstruction error) must be finite and >= 0, got {eta!r}")
    if not (math.isfinite(lipschitz) and lipschitz > 0):
        raise BadInput(f"the decoder's Lipschitz constant L must be finite and > 0, got {lipschitz!r}")
    return (np.asarray(input_distance, dtype=np.float64) - 2.0 * eta) / lipschitz


def bottleneck_separation(delta: float, eta: float, lipschitz: float) -> float:
    """``δ' = (δ − 2η) / L``: a δ-separated input set has a δ'-separated image ``f(X)`` (Lemma B.1); needs ``δ > 2η``."""
    separation = float(code_distance_lower_bound(delta, eta, lipschitz))
    if not separation > 0:
        raise BadInput(f"Lemma B.1 needs delta > 2*eta to transfer separation, got delta={delta}, eta={eta}")
    return separation


def capacity_gap(n: int, k: int, m: int, k_prime: int, R: float, R_prime: float,
                 delta: float, eta: float, L: float, c: float) -> float:
    """``log [C(n,k)(cR/δ)^k] − log [C(m,k')(1 + 2R'/δ')^{k'}]`` with ``δ' = (δ − 2η)/L`` (Theorem B.1, Eq. 14)."""
    delta_prime = bottleneck_separation(delta, eta, L)
    return log_sparse_packing_lower(n, k, R, delta, c) - log_sparse_packing_upper(m, k_prime, R_prime, delta_prime)


def capacity_condition(n: int, k: int, m: int, k_prime: int, R: float, R_prime: float,
                       delta: float, eta: float, L: float, c: float) -> bool:
    """Theorem B.1's condition ``C(n,k)(cR/δ)^k > C(m,k')(1 + 2R'/δ')^{k'}``.

    When it holds, no encoder into ``Σ(m, k', R')`` with an ``L``-Lipschitz decoder reconstructs all of
    ``Σ(n, k, R)`` within ``η``: Lemma B.2's δ-separated inputs would map injectively onto a δ'-separated
    bottleneck set larger than Lemma B.3 allows. ``c`` is Lemma B.2's universal constant (see docs/theory.md).
    """
    return capacity_gap(n, k, m, k_prime, R, R_prime, delta, eta, L, c) > 0


def capacity_threshold_n(k: int, k_prime: int, width_ratio: float, R: float, R_prime: float,
                         delta: float, eta: float, L: float, c: float) -> int:
    """Remark B.1: an ``n*`` such that the capacity condition holds for every ``n >= n*`` and every bottleneck
    width ``k' <= m <= width_ratio · n``, when ``k > k'``.

    From ``C(n,k) >= (n/k)^k`` and ``C(m,k') <= (e m/k')^{k'} <= (e α n/k')^{k'}`` the condition follows from
    ``(k − k') log n > k log k − k log(cR/δ) + k' log(eα/k') + k' log(1 + 2R'/δ')``.
    """
    if not (isinstance(k, int) and isinstance(k_prime, int) and 1 <= k_prime < k):
        raise BadInput(f"Remark B.1 is about a sparser bottleneck: needs integers 1 <= k_prime < k, got k={k}, k_prime={k_prime}")
    if not (math.isfinite(width_ratio) and width_ratio > 0):
        raise BadInput(f"width_ratio (m / n) must be finite and > 0, got {width_ratio!r}")
    delta_prime = bottleneck_separation(delta, eta, L)
    if not min(R, R_prime, c) > 0:
        raise BadInput(f"R, R_prime and c must be > 0, got R={R}, R_prime={R_prime}, c={c}")
    offset = (k * math.log(k) - k * math.log(c * R / delta) + k_prime * math.log(math.e * width_ratio / k_prime)
              + k_prime * math.log1p(2.0 * R_prime / delta_prime))
    log_threshold = offset / (k - k_prime)
    if log_threshold > 700:
        raise BadInput(f"the Remark B.1 threshold n* = exp({log_threshold:.1f}) is beyond float range")
    return max(math.floor(math.exp(log_threshold)) + 1, k, math.ceil(k_prime / width_ratio))
