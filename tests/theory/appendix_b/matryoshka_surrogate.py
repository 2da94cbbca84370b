"""The orthonormal linear surrogate of a Matryoshka SAE and its semantic errors (paper, Sec. 4.2, Theorem B.2).

Conventions: decoder positions ``j`` and prefix sizes ``m_k`` are 1-based as in the paper;
the prefix index ``k`` and the nuisance index ``q`` are 0-based Python indices.

- Decoder directions ``d_1..d_{m_K}`` are orthonormal; prefix ``k`` spans ``D_k = span(d_1..d_{m_k})``.
- Target semantic subspaces ``S_k`` with ``dim S_k = m_k``.
- Prefix mismatch ``M_k = ||P_{D_k} − P_{S_k}||_F²``, total ``M = Σ_k M_k``.
- Nuisance directions ``e_q = d_{j_q}`` (orthonormal, orthogonal to every ``S_k``). Then
  ``M_k >= 2 |Q_k|`` with ``Q_k = {q : j_q <= m_k}``, so ``M >= 2 Σ_q r(j_q) >= 2 Q``.
- Repair of ``e_q`` in an affected prefix ``k``: a unit ``s ∈ S_k ∩ (D_k^{−q})^⊥`` where
  ``D_k^{−q} = D_k ⊖ span(e_q)``; the repaired subspace is ``R = D_k^{−q} ⊕ span(s)``. The local
  error ``Δ_{q,k} = M_k − ||P_R − P_{S_k}||_F²`` equals exactly 2, and so does its average over
  the ``r(j_q)`` affected prefixes, the normalised error ``Ē_q``.
- CSAE: an erroneous parent assignment costs ``||P_{π*} − P_{π̂}||_F² = 2(1 − cos²) <= 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from hsae.errors import BadInput
from appendix_b.prefix_reuse import prefix_reuse_counts, validate_prefix_sizes
from appendix_b.projectors import line_projector_distance_sq, orthonormal_basis, projector_distance_sq

ORTHONORMALITY_TOLERANCE = 1e-8
"""Largest entry of ``DᵀD − I`` (and of ``Sᵀe_q``) accepted as numerically zero."""


@dataclass(frozen=True)
class PrefixSurrogate:
    """A concrete configuration of Theorem B.2; build it with ``make_prefix_surrogate`` (which validates)."""

    decoder: np.ndarray
    """``(d, m_K)``: column ``j − 1`` is the decoder direction ``d_j``; columns are orthonormal."""
    prefix_sizes: np.ndarray
    """``m_1 < … < m_K``; ``m_K`` equals the number of decoder columns."""
    target_bases: tuple[np.ndarray, ...]
    """Orthonormal bases ``(d, m_k)`` of the target semantic subspaces ``S_k``."""
    nuisance_positions: np.ndarray
    """Distinct 1-based positions ``j_q`` of the nuisance directions ``e_q = d_{j_q}``."""

    @property
    def prefix_count(self) -> int:
        return int(self.prefix_sizes.size)

    @property
    def nuisance_count(self) -> int:
        return int(self.nuisance_positions.size)

    def prefix_basis(self, k: int) -> np.ndarray:
        """Orthonormal basis ``(d, m_k)`` of the prefix subspace ``D_k``."""
        return self.decoder[:, : int(self.prefix_sizes[self._prefix_index(k)])]

    def nuisance_direction(self, q: int) -> np.ndarray:
        """The unit vector ``e_q = d_{j_q}``."""
        return self.decoder[:, int(self.nuisance_positions[self._nuisance_index(q)]) - 1]

    def _prefix_index(self, k: int) -> int:
        if not 0 <= k < self.prefix_count:
            raise BadInput(f"prefix index {k} is out of range 0..{self.prefix_count - 1}")
        return k

    def _nuisance_index(self, q: int) -> int:
        if not 0 <= q < self.nuisance_count:
            raise BadInput(f"nuisance index {q} is out of range 0..{self.nuisance_count - 1}")
        return q


def make_prefix_surrogate(decoder, prefix_sizes, target_spanning_sets, nuisance_positions) -> PrefixSurrogate:
    """Validate and assemble a Theorem B.2 configuration.

    ``target_spanning_sets[k]`` is any ``(d, ·)`` array spanning ``S_k``; its dimension must be ``m_k``.
    """
    decoder_array = np.asarray(decoder, dtype=np.float64)
    sizes = validate_prefix_sizes(prefix_sizes)
    if decoder_array.ndim != 2 or decoder_array.shape[1] != sizes[-1]:
        raise BadInput(f"decoder: expected shape (d, m_K = {int(sizes[-1])}), got {decoder_array.shape}")
    gram_error = np.max(np.abs(decoder_array.T @ decoder_array - np.eye(decoder_array.shape[1])))
    if gram_error > ORTHONORMALITY_TOLERANCE:
        raise BadInput(f"decoder: columns must be orthonormal (largest |DᵀD − I| entry is {gram_error:.2e})")
    if len(target_spanning_sets) != sizes.size:
        raise BadInput(f"targets: expected one target subspace per prefix ({sizes.size}), got {len(target_spanning_sets)}")
    bases = tuple(orthonormal_basis(span, f"target subspace S_{k}") for k, span in enumerate(target_spanning_sets))
    for k, (basis, size) in enumerate(zip(bases, sizes)):
        if basis.shape != (decoder_array.shape[0], size):
            raise BadInput(f"target subspace S_{k}: expected dimension m_k = {int(size)} in R^{decoder_array.shape[0]}, "
                           f"got dimension {basis.shape[1]} in R^{basis.shape[0]}")
    positions = np.asarray(nuisance_positions)
    if positions.ndim != 1 or (positions.size and not np.issubdtype(positions.dtype, np.integer)):
        raise BadInput(f"nuisance positions: expected a 1-D integer sequence, got {positions!r}")
    positions = positions.astype(np.int64)
    if np.unique(positions).size != positions.size or np.any(positions < 1) or np.any(positions > sizes[-1]):
        raise BadInput(f"nuisance positions: expected distinct values in 1..{int(sizes[-1])}, got {positions.tolist()}")
    nuisance = decoder_array[:, positions - 1]
    for k, basis in enumerate(bases):
        leak = np.max(np.abs(basis.T @ nuisance), initial=0.0)
        if leak > ORTHONORMALITY_TOLERANCE:
            raise BadInput(f"nuisance directions must be orthogonal to every target subspace; S_{k} overlaps them ({leak:.2e})")
    return PrefixSurrogate(decoder_array, sizes, bases, positions)


def prefix_mismatches(surrogate: PrefixSurrogate) -> np.ndarray:
    """``M_k = ||P_{D_k} − P_{S_k}||_F²`` for every prefix ``k`` (Lemma B.4 with equal dimensions)."""
    return np.array([projector_distance_sq(surrogate.prefix_basis(k), surrogate.target_bases[k])
                     for k in range(surrogate.prefix_count)])


def total_prefix_mismatch(surrogate: PrefixSurrogate) -> float:
    """``M = Σ_k ||P_{D_k} − P_{S_k}||_F²``."""
    return float(np.sum(prefix_mismatches(surrogate)))


def nuisance_counts_per_prefix(surrogate: PrefixSurrogate) -> np.ndarray:
    """``|Q_k| = #{q : j_q <= m_k}`` for every prefix ``k``."""
    return np.sum(surrogate.nuisance_positions[None, :] <= surrogate.prefix_sizes[:, None], axis=1)


def nuisance_mismatch_bound(surrogate: PrefixSurrogate) -> float:
    """Theorem B.2's lower bound on the total mismatch: ``2 Σ_q r(j_q)`` (``= 2 Σ_k |Q_k|``)."""
    if surrogate.nuisance_count == 0:
        return 0.0
    return 2.0 * float(np.sum(prefix_reuse_counts(surrogate.prefix_sizes, surrogate.nuisance_positions)))


def affected_prefixes(surrogate: PrefixSurrogate, q: int) -> np.ndarray:
    """The 0-based indices ``k`` of the prefixes that contain ``e_q`` (``j_q <= m_k``); there are ``r(j_q)``."""
    position = surrogate.nuisance_positions[surrogate._nuisance_index(q)]
    return np.flatnonzero(surrogate.prefix_sizes >= position)


def _prefix_without_nuisance(surrogate: PrefixSurrogate, q: int, k: int) -> np.ndarray:
    position = int(surrogate.nuisance_positions[surrogate._nuisance_index(q)])
    size = int(surrogate.prefix_sizes[surrogate._prefix_index(k)])
    if position > size:
        raise BadInput(f"nuisance direction {q} (position {position}) is not in prefix {k} (size {size})")
    kept = [column for column in range(size) if column != position - 1]
    return surrogate.decoder[:, kept]


def repair_space(surrogate: PrefixSurrogate, q: int, k: int) -> np.ndarray:
    """Orthonormal basis of ``S_k ∩ (D_k^{−q})^⊥``, the admissible repair directions.

    Its dimension is at least 1 (``dim S_k + dim (D_k^{−q})^⊥ = m_k + d − m_k + 1 = d + 1``), so the
    paper's repair-direction assumption always holds in the surrogate.
    """
    target = surrogate.target_bases[surrogate._prefix_index(k)]
    reduced = _prefix_without_nuisance(surrogate, q, k)
    coupling = reduced.T @ target
    _, singular, right = np.linalg.svd(coupling, full_matrices=True)
    rank = int(np.sum(singular > 1e-10))
    return target @ right[rank:].T


def local_matryoshka_error(surrogate: PrefixSurrogate, q: int, k: int, repair: np.ndarray | None = None) -> float:
    """``Δ_{q,k} = ||P_{D_k} − P_{S_k}||_F² − ||P_R − P_{S_k}||_F²`` with ``R = D_k^{−q} ⊕ span(repair)``.

    ``repair`` must be a unit vector of ``S_k ∩ (D_k^{−q})^⊥``; by default the first basis vector of
    ``repair_space``. Theorem B.2 shows the value is exactly 2 for every admissible repair.
    """
    reduced = _prefix_without_nuisance(surrogate, q, k)
    target = surrogate.target_bases[k]
    if repair is None:
        repair_vector = repair_space(surrogate, q, k)[:, 0]
    else:
        repair_vector = np.asarray(repair, dtype=np.float64).reshape(-1)
        in_target = np.linalg.norm(target.T @ repair_vector)
        off_prefix = np.max(np.abs(reduced.T @ repair_vector), initial=0.0)
        if abs(np.linalg.norm(repair_vector) - 1.0) > ORTHONORMALITY_TOLERANCE \
                or abs(in_target - 1.0) > ORTHONORMALITY_TOLERANCE or off_prefix > ORTHONORMALITY_TOLERANCE:
            raise BadInput("repair: expected a unit vector inside S_k and orthogonal to the prefix without e_q")
    repaired = np.column_stack([reduced, repair_vector])
    return projector_distance_sq(surrogate.prefix_basis(k), target) - projector_distance_sq(repaired, target)


def normalised_matryoshka_error(surrogate: PrefixSurrogate, q: int) -> float:
    """``Ē_q = (1 / r(j_q)) Σ_{k : j_q <= m_k} Δ_{q,k}``: each nuisance direction counted once."""
    prefixes = affected_prefixes(surrogate, q)
    return float(np.mean([local_matryoshka_error(surrogate, q, int(k)) for k in prefixes]))


def total_normalised_matryoshka_error(surrogate: PrefixSurrogate) -> float:
    """``Ē = Σ_q Ē_q`` (``= 2 Q`` by Theorem B.2)."""
    return float(sum(normalised_matryoshka_error(surrogate, q) for q in range(surrogate.nuisance_count)))


def csae_semantic_error(ideal_parents: np.ndarray, assigned_parents: np.ndarray) -> float:
    """``E_CSAE(B) = Σ_{i∈B} ||P_{π*(i)} − P_{π̂(i)}||_F²`` over rows ``i`` (parent lines, Lemma B.5)."""
    ideal = np.atleast_2d(np.asarray(ideal_parents, dtype=np.float64))
    assigned = np.atleast_2d(np.asarray(assigned_parents, dtype=np.float64))
    if ideal.shape != assigned.shape:
        raise BadInput(f"ideal and assigned parent directions differ in shape: {ideal.shape} vs {assigned.shape}")
    return float(sum(line_projector_distance_sq(u, v) for u, v in zip(ideal, assigned)))


class AmplificationChain(NamedTuple):
    """The quantities of Theorem B.2's chain ``E_CSAE(B) <= 2|B| = 2Q = Ē <= 2 Σ_q r(j_q) <= M``."""

    csae_error: float
    normalised_matryoshka_error: float
    reuse_bound: float
    total_mismatch: float


def amplification_chain(surrogate: PrefixSurrogate, ideal_parents, assigned_parents) -> AmplificationChain:
    """Evaluate every term of Theorem B.2 for one configuration and a CSAE error set ``B`` with ``|B| = Q``."""
    error_count = np.atleast_2d(np.asarray(ideal_parents)).shape[0]
    if error_count != surrogate.nuisance_count:
        raise BadInput(f"the comparison needs |B| = Q: {error_count} CSAE errors but {surrogate.nuisance_count} nuisance directions")
    return AmplificationChain(
        csae_error=csae_semantic_error(ideal_parents, assigned_parents),
        normalised_matryoshka_error=total_normalised_matryoshka_error(surrogate),
        reuse_bound=nuisance_mismatch_bound(surrogate),
        total_mismatch=total_prefix_mismatch(surrogate),
    )
