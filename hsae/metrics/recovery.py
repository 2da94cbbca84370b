"""How well a cascade recovers a planted hierarchy (definitions: ``docs/synthetic.md``).

Leaves: every true leaf direction is assigned its own learned level-1 atom (decoder columns,
spec Eq. 6), one-to-one: the assignment has as many pairs at cosine ≥ ``threshold`` (the
*matched* pairs) as possible and, among those, the largest total cosine over all assigned pairs
(Hungarian algorithm, ``scipy.optimize.linear_sum_assignment``). Cosines are signed.
``leaf_recovery`` is the share of leaves matched.

Levels l = 2..L: an assigned atom's learned ancestor is ``π_l(...π_2(i))`` (spec Eq. 33, −1
when some link has no parent, and −1 stays −1); its true ancestor is its leaf's ancestor at
level l. Over pairs of assigned atoms, a *true pair* shares a true ancestor, a *predicted
pair* shares a learned ancestor other than −1. Precision = |true ∩ predicted| / |predicted|,
recall = |true ∩ predicted| / |true|, F1 = 2|true ∩ predicted| / (|true| + |predicted|) (their
harmonic mean, and 0 when nothing true is predicted); ARI compares the two partitions, an atom
without a learned ancestor counting as its own singleton cluster. The grouping is scored on the
atom that stands for each leaf whether or not it reaches the threshold, so it is defined for a
method that matches few leaves; ``leaf_recovery`` says how good those atoms are.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from hsae.errors import BadInput
from hsae.store.truth import Truth

NO_PARENT = -1


@dataclass(frozen=True)
class LevelRecovery:
    """Agreement at one level; a ratio is ``None`` when its denominator is zero (F1: when there
    are neither true nor predicted pairs)."""

    level: int
    precision: float | None
    recall: float | None
    f1: float | None
    ari: float | None
    true_pairs: int
    predicted_pairs: int
    correct_pairs: int
    n_true: int  # concepts at this level in the truth
    n_true_used: int  # distinct true ancestors of the assigned atoms
    n_learned_used: int  # distinct learned ancestors (not −1) of the assigned atoms
    n_without_parent: int  # assigned atoms whose learned ancestor is −1


@dataclass(frozen=True)
class RecoveryReport:
    threshold: float
    n_leaves: int
    n_atoms: int
    n_matched: int
    leaf_recovery: float  # n_matched / n_leaves
    mean_best_cosine: float  # mean over leaves of the best cosine with any atom
    matched_atoms: tuple[int, ...]
    matched_leaves: tuple[int, ...]
    matched_cosines: tuple[float, ...]
    assigned_atoms: tuple[int, ...]  # the atom standing for each leaf, in leaf order (−1: none)
    levels: tuple[LevelRecovery, ...]  # scored on the assigned atoms

    def to_dict(self) -> dict:
        return asdict(self)


def cosine_matrix(atoms: np.ndarray, leaves: np.ndarray) -> np.ndarray:
    """``cos[i, j]`` between atom row ``i`` and leaf row ``j`` (a zero row has cosine 0)."""
    a = atoms / np.maximum(np.linalg.norm(atoms, axis=1, keepdims=True), 1e-12)
    b = leaves / np.maximum(np.linalg.norm(leaves, axis=1, keepdims=True), 1e-12)
    return a @ b.T


def assign_atoms(cos: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A one-to-one assignment of atoms (rows) to leaves (columns) with ``min(cos.shape)``
    pairs: the most pairs with ``cos >= threshold``, then the largest total cosine. Returns
    rows, columns and which pairs reach the threshold, sorted by column."""
    eligible = cos >= threshold
    # Total cosines of two assignments differ by at most 2·min(shape): a larger bonus per
    # eligible pair makes their count dominate the objective.
    bonus = 2.0 * min(cos.shape) + 1.0
    rows, cols = linear_sum_assignment(np.where(eligible, bonus, 0.0) + cos, maximize=True)
    order = np.argsort(cols)
    rows, cols = rows[order], cols[order]
    return rows, cols, eligible[rows, cols]


def _pairs(counts: np.ndarray) -> int:
    return int((counts * (counts - 1) // 2).sum())


def _ratio(num: int, den: int) -> float | None:
    return num / den if den else None


def level_agreement(
    level: int, true_labels: np.ndarray, learned_labels: np.ndarray, n_true: int
) -> LevelRecovery:
    """Pairwise precision/recall/F1 and ARI of ``learned_labels`` (−1: no cluster) against
    ``true_labels`` over the same items."""
    grouped = learned_labels != NO_PARENT
    _, true_counts = np.unique(true_labels, return_counts=True)
    _, learned_counts = np.unique(learned_labels[grouped], return_counts=True)
    _, joint_counts = np.unique(
        np.stack([true_labels[grouped], learned_labels[grouped]]), axis=1, return_counts=True
    )
    true_pairs, predicted_pairs = _pairs(true_counts), _pairs(learned_counts)
    correct = _pairs(joint_counts)
    precision, recall = _ratio(correct, predicted_pairs), _ratio(correct, true_pairs)
    f1 = _ratio(2 * correct, true_pairs + predicted_pairs)
    # Atoms without a learned ancestor become singletons: labels past every real one.
    singleton = learned_labels.max(initial=0) + 1 + np.arange(len(learned_labels))
    ari_labels = np.where(grouped, learned_labels, singleton)
    ari = float(adjusted_rand_score(true_labels, ari_labels)) if len(true_labels) else None
    return LevelRecovery(
        level=level,
        precision=precision,
        recall=recall,
        f1=f1,
        ari=ari,
        true_pairs=true_pairs,
        predicted_pairs=predicted_pairs,
        correct_pairs=correct,
        n_true=n_true,
        n_true_used=len(true_counts),
        n_learned_used=len(learned_counts),
        n_without_parent=int((~grouped).sum()),
    )


def learned_ancestors(learned_parents: Sequence[np.ndarray], level: int, atoms: np.ndarray) -> np.ndarray:
    """``π_level(...π_2(atoms))``, with −1 once any link has no parent."""
    index = np.asarray(atoms, dtype=np.int64)
    for parent in learned_parents[: level - 1]:
        has = index != NO_PARENT
        above = np.full_like(index, NO_PARENT)
        above[has] = parent[index[has]]
        index = above
    return index


def _check_parents(learned_parents: Sequence[np.ndarray], n_atoms: int) -> list[np.ndarray]:
    """``π_l`` has one entry per level-(l−1) latent: ``n_1 = n_atoms`` for π_2, ``len(π_l)``
    for ``π_{l-1}``'s values, which must lie in ``[-1, n_{l-1})``."""
    checked = [np.asarray(parent) for parent in learned_parents]
    for position, parent in enumerate(checked):
        name = f"learned_parents[{position}] (π_{position + 2})"
        if parent.ndim != 1 or not np.issubdtype(parent.dtype, np.integer):
            raise BadInput(
                f"{name} must be a 1-d integer array; got dtype {parent.dtype}, shape {parent.shape}"
            )
        if position == 0 and len(parent) != n_atoms:
            raise BadInput(f"{name} must have one entry per level-1 atom ({n_atoms}); got {len(parent)}")
        n_above = len(checked[position + 1]) if position + 1 < len(checked) else None
        if len(parent) and (parent.min() < NO_PARENT or (n_above is not None and parent.max() >= n_above)):
            bound = f"[-1, {n_above})" if n_above is not None else ">= -1"
            raise BadInput(f"{name} values must be in {bound}; got [{parent.min()}, {parent.max()}]")
    return [parent.astype(np.int64) for parent in checked]


def hierarchy_recovery(
    atoms: torch.Tensor | np.ndarray,
    learned_parents: Sequence[np.ndarray],
    truth: Truth,
    threshold: float = 0.9,
) -> RecoveryReport:
    """Compare a learned hierarchy to ``truth``.

    ``atoms``: level-1 decoder columns as rows ``(n_1, d)``; ``learned_parents``:
    ``[π_2, π_3, ...]``, ``π_l`` of length ``n_{l-1}`` with values in ``[-1, n_l)``. Levels
    2..min(L, 1 + len(learned_parents)) are scored.
    """
    if isinstance(atoms, torch.Tensor):
        atoms = atoms.detach().cpu().numpy()
    atoms = np.asarray(atoms, dtype=np.float64)
    if atoms.ndim != 2 or atoms.shape[1] != truth.leaves.shape[1]:
        raise BadInput(
            f"atoms must be (n_atoms, {truth.leaves.shape[1]}) rows (level-1 decoder columns); "
            f"got shape {atoms.shape}"
        )
    if not 0.0 < threshold <= 1.0:
        raise BadInput(f"threshold must be in (0, 1]; got {threshold}")
    parents = _check_parents(learned_parents, len(atoms))
    cos = cosine_matrix(atoms, truth.leaves)
    atom_index, leaf_index, matched = assign_atoms(cos, threshold)
    levels = tuple(
        level_agreement(
            level,
            truth.ancestors(level)[leaf_index],
            learned_ancestors(parents, level, atom_index),
            len(truth.directions[level - 1]),
        )
        for level in range(2, min(truth.depth, 1 + len(parents)) + 1)
    )
    n_leaves = len(truth.leaves)
    assigned = np.full(n_leaves, NO_PARENT)
    assigned[leaf_index] = atom_index
    return RecoveryReport(
        threshold=threshold,
        n_leaves=n_leaves,
        n_atoms=len(atoms),
        n_matched=int(matched.sum()),
        leaf_recovery=int(matched.sum()) / n_leaves,
        mean_best_cosine=float(cos.max(axis=0).mean()) if len(atoms) else 0.0,
        matched_atoms=tuple(int(i) for i in atom_index[matched]),
        matched_leaves=tuple(int(j) for j in leaf_index[matched]),
        matched_cosines=tuple(float(c) for c in cos[atom_index[matched], leaf_index[matched]]),
        assigned_atoms=tuple(int(i) for i in assigned),
        levels=levels,
    )
