"""Random valid configurations of Theorem B.2 (the Matryoshka prefix surrogate), for tests and examples."""

from __future__ import annotations

import numpy as np

from hsae.errors import BadInput
from appendix_b.matryoshka_surrogate import PrefixSurrogate, make_prefix_surrogate
from appendix_b.prefix_reuse import validate_prefix_sizes


def random_orthonormal(rng: np.random.Generator, dim: int, count: int) -> np.ndarray:
    """``(dim, count)`` orthonormal columns, Haar-distributed (QR of a Gaussian with the sign fix)."""
    if not 0 <= count <= dim:
        raise BadInput(f"cannot draw {count} orthonormal vectors in R^{dim}")
    gaussian = rng.standard_normal((dim, count))
    basis, triangular = np.linalg.qr(gaussian)
    signs = np.where(np.diag(triangular) < 0, -1.0, 1.0)
    return basis * signs


def random_unit_vectors(rng: np.random.Generator, count: int, dim: int) -> np.ndarray:
    """``(count, dim)`` independent uniformly random unit vectors."""
    gaussian = rng.standard_normal((count, dim))
    return gaussian / np.linalg.norm(gaussian, axis=1, keepdims=True)


def random_prefix_surrogate(rng: np.random.Generator, ambient_dim: int, prefix_sizes, nuisance_positions,
                            target_noise: float) -> PrefixSurrogate:
    """A random configuration satisfying every assumption of Theorem B.2.

    Construction (needs ``ambient_dim >= m_K + Q``): a random orthonormal frame of ``R^d`` is split into the
    ``Q`` nuisance directions, ``m_K − Q`` semantic decoder directions and ``Q`` spare directions orthogonal
    to the whole decoder. The decoder puts the nuisance directions at ``nuisance_positions`` and the semantic
    ones, in order, everywhere else. The tight target ``T_k`` spans the semantic directions of prefix ``k``
    plus ``|Q_k|`` spare ones, so ``||P_{D_k} − P_{S_k}||_F² = 2|Q_k|`` exactly when ``target_noise = 0``.
    ``S_k`` is the span of ``T_k + target_noise · G_k`` with ``G_k`` Gaussian inside the orthogonal complement
    of the nuisance directions, so every ``S_k`` stays orthogonal to them.
    """
    sizes = validate_prefix_sizes(prefix_sizes)
    positions = np.asarray(nuisance_positions, dtype=np.int64).reshape(-1)
    nuisance_total, largest = positions.size, int(sizes[-1])
    if ambient_dim < largest + nuisance_total:
        raise BadInput(f"ambient dimension {ambient_dim} is too small: the construction needs m_K + Q = {largest + nuisance_total}")
    if not np.isfinite(target_noise) or target_noise < 0:
        raise BadInput(f"target_noise must be a finite non-negative number, got {target_noise}")
    frame = random_orthonormal(rng, ambient_dim, ambient_dim)
    nuisance = frame[:, :nuisance_total]
    semantic = frame[:, nuisance_total:largest]
    spare = frame[:, largest:largest + nuisance_total]
    complement = frame[:, nuisance_total:]

    is_nuisance = np.zeros(largest, dtype=bool)
    is_nuisance[positions - 1] = True
    decoder = np.empty((ambient_dim, largest))
    decoder[:, positions - 1] = nuisance
    decoder[:, ~is_nuisance] = semantic

    targets = []
    for size in sizes:
        semantic_in_prefix = decoder[:, :size][:, ~is_nuisance[:size]]
        spare_needed = int(np.sum(is_nuisance[:size]))
        tight = np.column_stack([semantic_in_prefix, spare[:, :spare_needed]])
        noise = complement @ rng.standard_normal((complement.shape[1], size))
        targets.append(tight + target_noise * noise)
    return make_prefix_surrogate(decoder, sizes, targets, positions)
