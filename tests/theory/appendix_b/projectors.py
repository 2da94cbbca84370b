"""Orthogonal projectors onto subspaces and their Frobenius distances (paper, Lemmas B.4-B.5).

A subspace is handed over as a spanning set: a ``(d, r)`` array whose columns span it
(they need not be orthonormal or independent). Everything is float64 numpy.
"""

from __future__ import annotations

import numpy as np

from hsae.errors import BadInput

RANK_TOLERANCE = 1e-10
"""Singular values below this times the largest one are treated as zero when orthonormalising."""


def _as_spanning_set(vectors: np.ndarray, name: str) -> np.ndarray:
    array = np.asarray(vectors, dtype=np.float64)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2 or array.shape[0] == 0:
        raise BadInput(f"{name}: expected a (d, r) array whose columns span a subspace, got shape {array.shape}")
    if not np.all(np.isfinite(array)):
        raise BadInput(f"{name}: the spanning set contains NaN or infinite entries")
    return array


def orthonormal_basis(vectors: np.ndarray, name: str = "spanning set") -> np.ndarray:
    """Orthonormal basis ``(d, dim)`` of the span of the columns of ``vectors`` (via SVD).

    The dimension is the numerical rank: singular values ``<= RANK_TOLERANCE * s_max`` count as zero.
    An all-zero spanning set gives the zero subspace, a ``(d, 0)`` array.
    """
    array = _as_spanning_set(vectors, name)
    if array.shape[1] == 0:
        return array
    left, singular, _ = np.linalg.svd(array, full_matrices=False)
    if singular.size == 0 or singular[0] == 0.0:
        return array[:, :0]
    rank = int(np.sum(singular > RANK_TOLERANCE * singular[0]))
    return left[:, :rank]


def projector(vectors: np.ndarray, name: str = "spanning set") -> np.ndarray:
    """The orthogonal projector ``P_U = Q Qᵀ`` onto ``U = span(columns)``, ``Q`` an orthonormal basis of U."""
    basis = orthonormal_basis(vectors, name)
    return basis @ basis.T


def projector_distance_sq(spanning_u: np.ndarray, spanning_v: np.ndarray) -> float:
    """Lemma B.4: ``||P_U − P_V||_F² = dim U + dim V − 2 tr(P_U P_V)``.

    Evaluated through the right-hand side, with ``tr(P_U P_V) = ||Q_Uᵀ Q_V||_F²`` for orthonormal
    bases ``Q_U, Q_V``. For ``dim U = dim V = k`` this is ``2 (k − tr(P_U P_V))``.
    """
    basis_u = orthonormal_basis(spanning_u, "U")
    basis_v = orthonormal_basis(spanning_v, "V")
    if basis_u.shape[0] != basis_v.shape[0]:
        raise BadInput(f"U lives in R^{basis_u.shape[0]} but V in R^{basis_v.shape[0]}: a projector distance needs one space")
    trace_overlap = float(np.sum((basis_u.T @ basis_v) ** 2))
    return basis_u.shape[1] + basis_v.shape[1] - 2.0 * trace_overlap


def line_projector_distance_sq(u: np.ndarray, v: np.ndarray) -> float:
    """Lemma B.5: for the lines spanned by nonzero ``u, v``, ``||P_u − P_v||_F² = 2 (1 − cos²(u, v))``.

    For unit vectors ``cos(u, v) = u·v``, which is the paper's ``2 (1 − (u·v)²)``.
    """
    u_vec = np.asarray(u, dtype=np.float64).reshape(-1)
    v_vec = np.asarray(v, dtype=np.float64).reshape(-1)
    if u_vec.shape != v_vec.shape:
        raise BadInput(f"the two line directions have different lengths ({u_vec.size} and {v_vec.size})")
    norm_u, norm_v = float(np.linalg.norm(u_vec)), float(np.linalg.norm(v_vec))
    if norm_u == 0.0 or norm_v == 0.0 or not np.isfinite(norm_u * norm_v):
        raise BadInput("a line needs a finite nonzero direction vector")
    cosine = float(u_vec @ v_vec) / (norm_u * norm_v)
    return 2.0 * (1.0 - min(cosine * cosine, 1.0))
