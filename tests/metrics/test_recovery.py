"""Hierarchy-recovery metrics against hand-computed values and brute-force pair counts."""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.errors import BadInput
from hsae.metrics.recovery import hierarchy_recovery, learned_ancestors, level_agreement, assign_atoms
from hsae.store.truth import Truth


def two_families() -> Truth:
    """Six orthogonal leaves e0..e5; leaves 0-2 under parent 0, leaves 3-5 under parent 1."""
    leaves = np.eye(6)
    tops = np.array([[1.0, 1, 1, 0, 0, 0], [0, 0, 0, 1, 1, 1]]) / np.sqrt(3)
    return Truth((leaves, tops), (np.array([0, 0, 0, 1, 1, 1]),))


def level2(parents: list[int]):
    report = hierarchy_recovery(np.eye(6), [np.array(parents)], two_families())
    assert report.n_matched == 6
    (level,) = report.levels
    return level


def test_perfect_grouping_scores_one():
    level = level2([5, 5, 5, 2, 2, 2])
    assert (level.precision, level.recall, level.f1, level.ari) == (1.0, 1.0, 1.0, 1.0)
    assert (level.n_true, level.n_learned_used, level.n_without_parent) == (2, 2, 0)


def test_split_family_lowers_recall_only():
    # {0,1} {2} {3,4,5}: predicted pairs 1 + 3 = 4, all correct, of 6 true pairs.
    level = level2([0, 0, 1, 2, 2, 2])
    assert (level.true_pairs, level.predicted_pairs, level.correct_pairs) == (6, 4, 4)
    assert level.precision == 1.0
    assert level.recall == pytest.approx(2 / 3)
    assert level.f1 == pytest.approx(0.8)
    # ARI: Σ C(n_ij,2) = 4, Σ C(a_i,2) = 6, Σ C(b_j,2) = 4, C(6,2) = 15.
    assert level.ari == pytest.approx((4 - 6 * 4 / 15) / ((6 + 4) / 2 - 6 * 4 / 15))
    assert level.n_learned_used == 3


def test_merged_families_lower_precision_only():
    # One learned parent for all six: 15 predicted pairs, 6 of them true.
    level = level2([3, 3, 3, 3, 3, 3])
    assert level.precision == pytest.approx(0.4)
    assert level.recall == 1.0
    assert level.f1 == pytest.approx(4 / 7)
    assert level.ari == pytest.approx(0.0)


def test_atoms_without_parent_form_no_pair_and_are_singletons_for_ari():
    level = level2([0, 0, -1, 1, 1, -1])
    assert (level.predicted_pairs, level.correct_pairs) == (2, 2)
    assert level.recall == pytest.approx(1 / 3)
    assert level.f1 == pytest.approx(0.5)
    # Labels {0,0,a,1,1,b}: Σ C(n_ij,2) = 2, Σ C(a_i,2) = 6, Σ C(b_j,2) = 2.
    assert level.ari == pytest.approx((2 - 6 * 2 / 15) / ((6 + 2) / 2 - 6 * 2 / 15))
    assert (level.n_without_parent, level.n_learned_used) == (2, 2)


def test_no_predicted_pairs_leaves_precision_undefined_and_f1_zero():
    level = level2([-1] * 6)
    assert level.precision is None
    assert level.recall == 0.0 and level.f1 == 0.0


def test_f1_is_undefined_only_without_true_and_predicted_pairs():
    singletons = level_agreement(2, np.array([0, 1, 2]), np.array([-1, -1, -1]), 3)
    assert singletons.f1 is None
    assert level_agreement(2, np.array([0, 1, 2]), np.array([4, 4, -1]), 3).f1 == 0.0


def test_matching_prefers_more_pairs_over_larger_total_cosine():
    # Plain Hungarian on cosine picks the anti-diagonal (1.84 > 1.81) and keeps 1 pair.
    cos = np.array([[0.90, 0.99], [0.85, 0.91]])
    rows, cols, matched = assign_atoms(cos, 0.9)
    assert (rows.tolist(), cols.tolist(), matched.tolist()) == ([0, 1], [0, 1], [True, True])


def test_assignment_is_one_to_one_and_marks_the_pairs_below_threshold():
    # Two atoms both close to leaf 0: only one may take it; leaf 1 is reached by none at 0.9,
    # and is assigned the atom of the larger total cosine.
    cos = np.array([[0.97, 0.2], [0.95, 0.89], [0.1, 0.1]])
    rows, cols, matched = assign_atoms(cos, 0.9)
    assert (rows.tolist(), cols.tolist(), matched.tolist()) == ([0, 1], [0, 1], [True, False])


def test_leaf_recovery_and_assigned_atoms_below_threshold():
    truth = two_families()
    atoms = np.eye(6)[[4, 1, 0]] * 3.0  # norms do not matter
    atoms = np.vstack([atoms, [[1, 1, 1, 1, 1, 2]]])  # cosine 2/3 with leaf 5, 1/3 with the others
    report = hierarchy_recovery(torch.tensor(atoms), [np.array([0, 0, 1, 1])], truth)
    assert report.n_matched == 3 and report.leaf_recovery == 0.5
    assert report.matched_leaves == (0, 1, 4) and report.matched_atoms == (2, 1, 0)
    assert report.assigned_atoms == (2, 1, -1, -1, 0, 3)
    assert report.mean_best_cosine == pytest.approx((3 * 1.0 + 2 / 3 + 2 / 3) / 6)
    (level,) = report.levels
    # Assigned atoms 2, 1, 0, 3 (leaves 0, 1, 4, 5) -> learned parents 1, 0, 0, 1; true 0, 0, 1, 1.
    assert (level.true_pairs, level.predicted_pairs, level.correct_pairs) == (2, 2, 0)
    assert level.n_true_used == 2
    assert report.to_dict()["levels"][0]["precision"] == 0.0 and level.f1 == 0.0


def test_grouping_is_scored_when_no_leaf_reaches_the_threshold():
    # Atoms at cosine 0.8 with their leaves (below 0.9): nothing matched, the grouping still scored.
    truth = two_families()
    atoms = 0.8 * np.eye(6) + 0.6 * np.roll(np.eye(6), 3, axis=1)
    report = hierarchy_recovery(atoms, [np.array([7, 7, 7, 2, 2, 2])], truth)
    assert report.n_matched == 0 and report.leaf_recovery == 0.0
    assert report.assigned_atoms == (0, 1, 2, 3, 4, 5)
    assert report.levels[0].f1 == 1.0


def three_levels() -> Truth:
    leaves = np.eye(8)
    mids = np.kron(np.eye(4), np.ones((1, 2))) / np.sqrt(2)
    tops = np.kron(np.eye(2), np.ones((1, 4))) / 2
    return Truth((leaves, mids, tops), (np.array([0, 0, 1, 1, 2, 2, 3, 3]), np.array([0, 0, 1, 1])))


def test_missing_parent_propagates_up():
    pi2 = np.array([2, 2, -1, 0, 1, 1, 3, 3])
    pi3 = np.array([0, -1, 0, 1])
    assert learned_ancestors([pi2, pi3], 3, np.arange(8)).tolist() == [0, 0, -1, 0, -1, -1, 1, 1]
    assert learned_ancestors([pi2, pi3], 1, np.arange(3)).tolist() == [0, 1, 2]


def test_every_level_of_a_perfect_recovery_scores_one():
    truth = three_levels()
    perm = np.array([5, 2, 7, 0, 3, 6, 1, 4])  # atom a is leaf perm[a]
    relabel2, relabel3 = np.array([3, 0, 2, 1]), np.array([1, 0])
    pi2 = relabel2[truth.parents[0][perm]]
    pi3 = np.empty(4, dtype=np.int64)
    pi3[relabel2] = relabel3[truth.parents[1]]
    report = hierarchy_recovery(truth.leaves[perm], [pi2, pi3], truth)
    assert report.leaf_recovery == 1.0
    assert [lv.level for lv in report.levels] == [2, 3]
    for lv in report.levels:
        assert (lv.precision, lv.recall, lv.f1, lv.ari) == (1.0, 1.0, 1.0, 1.0)
        assert lv.n_learned_used == lv.n_true


def test_only_levels_present_in_both_are_scored():
    truth = three_levels()
    report = hierarchy_recovery(truth.leaves, [truth.parents[0]], truth)
    assert [lv.level for lv in report.levels] == [2]


@pytest.mark.parametrize(
    "parents, message",
    [
        ([np.zeros(5, dtype=int)], r"level-1 atom \(6\)"),
        ([np.zeros(6)], "integer"),
        ([np.array([0, 0, 0, 1, 1, -2])], "values"),
        ([np.array([0, 0, 0, 1, 1, 2]), np.zeros(2, dtype=int)], r"\[-1, 2\)"),
    ],
)
def test_malformed_parents_are_rejected(parents, message):
    with pytest.raises(BadInput, match=message):
        hierarchy_recovery(np.eye(6), parents, two_families())


def test_atoms_of_the_wrong_width_are_rejected():
    with pytest.raises(BadInput, match="atoms must be"):
        hierarchy_recovery(np.eye(5), [np.zeros(5, dtype=int)], two_families())


def brute_force_pairs(true: np.ndarray, learned: np.ndarray) -> tuple[int, int, int]:
    same_true = same_learned = both = 0
    for i, j in combinations(range(len(true)), 2):
        t = true[i] == true[j]
        p = learned[i] == learned[j] != -1
        same_true, same_learned, both = same_true + t, same_learned + p, both + (t and p)
    return same_true, same_learned, both


labellings = st.integers(1, 25).flatmap(
    lambda n: st.tuples(
        st.lists(st.integers(0, 4), min_size=n, max_size=n),
        st.lists(st.integers(-1, 4), min_size=n, max_size=n),
    )
)


@settings(max_examples=60, deadline=None)
@given(labellings)
def test_pair_counts_match_brute_force(labels):
    true, learned = (np.array(x) for x in labels)
    level = level_agreement(2, true, learned, n_true=5)
    assert (level.true_pairs, level.predicted_pairs, level.correct_pairs) == brute_force_pairs(true, learned)
    assert level.n_without_parent == int((learned == -1).sum())


@settings(max_examples=30, deadline=None)
@given(labellings, st.permutations(range(5)))
def test_scores_ignore_the_names_of_learned_parents(labels, names):
    true, learned = (np.array(x) for x in labels)
    renamed = np.where(learned >= 0, np.array(names)[learned], -1)
    a, b = level_agreement(2, true, learned, 5), level_agreement(2, true, renamed, 5)
    assert (a.precision, a.recall, a.ari) == (b.precision, b.recall, pytest.approx(b.ari))
