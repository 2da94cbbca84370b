"""Cluster-consistent Level-2 coding of clustered atoms (paper, Proposition B.1).

Model: atoms ``a_i = μ_{c(i)} + ε_i`` with prototypes ``μ_1..μ_C``. If every perturbation is smaller than half
the prototype gap, ``max_i ||ε_i|| < ½ min_{c≠c'} ||μ_c − μ_{c'}||``, the nearest-prototype encoder gives every
atom the one-hot code ``e_{c(i)}``, so same-parent atoms share their Level-2 support.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial.distance import pdist

from hsae.errors import BadInput


@dataclass(frozen=True)
class ClusterEncoder:
    """A TopK-1 Level-2 encoder with one latent per prototype.

    Pre-activations ``p_c(a) = ⟨μ_c, a⟩ − ||μ_c||²/2 = (||a||² − ||a − μ_c||²)/2``, so the top-1 latent is the
    nearest prototype; the code is the one-hot vector ``e_{argmax_c p_c(a)}`` (Proposition B.1's ``E``).
    """

    weight: np.ndarray
    """``(C, d)``: row ``c`` is the prototype ``μ_c``."""
    bias: np.ndarray
    """``(C,)``: ``−||μ_c||²/2``."""

    def pre_activations(self, atoms: np.ndarray) -> np.ndarray:
        return np.atleast_2d(np.asarray(atoms, dtype=np.float64)) @ self.weight.T + self.bias

    def encode(self, atoms: np.ndarray) -> np.ndarray:
        """``(N, C)`` one-hot codes of the rows of ``atoms``."""
        winners = np.argmax(self.pre_activations(atoms), axis=1)
        return np.eye(self.weight.shape[0])[winners]


def prototype_gap(prototypes: np.ndarray) -> float:
    """``min_{c≠c'} ||μ_c − μ_{c'}||`` (``inf`` for a single prototype)."""
    array = np.asarray(prototypes, dtype=np.float64)
    return float(np.min(pdist(array))) if array.shape[0] > 1 else float("inf")


def construct_cluster_encoder(prototypes: np.ndarray) -> ClusterEncoder:
    """The encoder of Proposition B.1's proof for the given ``(C, d)`` prototypes (which must be distinct)."""
    array = np.asarray(prototypes, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] == 0 or not np.all(np.isfinite(array)):
        raise BadInput(f"prototypes: expected a finite (C, d) array with C >= 1, got shape {array.shape}")
    if prototype_gap(array) == 0.0:
        raise BadInput("prototypes: two prototypes coincide, so no encoder can tell their clusters apart")
    return ClusterEncoder(weight=array.copy(), bias=-0.5 * np.sum(array**2, axis=1))


def separation_margin(atoms: np.ndarray, parents: np.ndarray, prototypes: np.ndarray) -> float:
    """``½ min_{c≠c'} ||μ_c − μ_{c'}|| − max_i ||a_i − μ_{c(i)}||``; Proposition B.1's condition is ``margin > 0``."""
    perturbations = np.asarray(atoms, dtype=np.float64) - np.asarray(prototypes, dtype=np.float64)[np.asarray(parents)]
    return 0.5 * prototype_gap(prototypes) - float(np.max(np.linalg.norm(perturbations, axis=1)))


def sample_clustered_atoms(rng: np.random.Generator, prototypes: np.ndarray, parents: np.ndarray,
                           radius: float) -> np.ndarray:
    """Atoms ``μ_{c(i)} + ε_i`` with ``ε_i`` uniform in the ball of the given radius.

    ``radius < ½ prototype_gap(prototypes)`` satisfies Proposition B.1's separation condition.
    """
    if not (np.isfinite(radius) and radius >= 0):
        raise BadInput(f"perturbation radius must be finite and >= 0, got {radius!r}")
    centres = np.asarray(prototypes, dtype=np.float64)[np.asarray(parents)]
    count, dim = centres.shape
    directions = rng.standard_normal((count, dim))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    lengths = radius * rng.uniform(size=(count, 1)) ** (1.0 / dim)
    return centres + lengths * directions


def support_inconsistency(codes: np.ndarray, parents: np.ndarray, subset=None) -> float:
    """Share of same-parent pairs ``{i, j} ⊆ subset`` whose Level-2 supports differ.

    ``SI(S) = (1/|P_S|) Σ_{{i,j} ∈ P_S} 1[supp(u_i) ≠ supp(u_j)]``, ``P_S`` the same-parent pairs of ``S``
    (default: all atoms). Needs at least one such pair.
    """
    support = np.asarray(codes) != 0
    parent_array = np.asarray(parents)
    if support.ndim != 2 or parent_array.shape != (support.shape[0],):
        raise BadInput(f"codes (N, C) and parents (N,) disagree: shapes {support.shape} and {parent_array.shape}")
    chosen = np.arange(support.shape[0]) if subset is None else np.unique(np.asarray(subset, dtype=np.int64))
    if chosen.size and (chosen.min() < 0 or chosen.max() >= support.shape[0]):
        raise BadInput(f"subset: indices must lie in 0..{support.shape[0] - 1}")
    first, second = np.triu_indices(chosen.size, k=1)
    same_parent = parent_array[chosen[first]] == parent_array[chosen[second]]
    if not np.any(same_parent):
        raise BadInput("support inconsistency needs a subset with at least one same-parent pair")
    left, right = chosen[first[same_parent]], chosen[second[same_parent]]
    differs = np.any(support[left] != support[right], axis=1)
    return float(np.mean(differs))
