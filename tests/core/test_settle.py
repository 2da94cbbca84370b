"""Settling the upper levels (hsae.cascade.settle): the number of concepts and their members
chosen from the atoms below, and pruned latents that never fire."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import norm

from hsae.cascade.config import LevelConfig
from hsae.cascade import settle
from hsae.cascade.settle import (PRUNED_BIAS, cousin_ratio, distinct_clusters, pair_statistics, settle_bottom_up,
                                 split_z)
from hsae.metrics.recovery import level_agreement


def tree(seed: int, branching: list[list[int]], similarity: list[float], dim: int = 128):
    """A planted tree of this test's own design: ``branching[i]`` lists the child counts of the
    concepts one level above the level made at step i (top-down); a child is the parent rotated
    by angle arccos(s) toward a random direction orthogonal to it. Returns directions (leaves
    first) and each leaf's ancestor at every level."""
    rng = np.random.default_rng(seed)
    top = np.linalg.qr(rng.standard_normal((dim, len(branching[0]))))[0].T  # orthonormal roots
    levels, ancestors = [top], [np.arange(len(top))]
    for counts, s in zip(branching, reversed(similarity)):
        above = levels[0]
        parent = np.repeat(np.arange(len(above)), counts)
        r = rng.standard_normal((len(parent), dim))
        r -= (r * above[parent]).sum(1, keepdims=True) * above[parent]
        r /= np.linalg.norm(r, axis=1, keepdims=True)
        levels.insert(0, s * above[parent] + np.sqrt(1 - s * s) * r)
        ancestors = [a[parent] for a in ancestors]
        ancestors.insert(0, np.arange(len(parent)))
    return levels, ancestors


def learned_atoms(leaves: np.ndarray, seed: int, cosine: float = 0.98) -> np.ndarray:
    """Unit atoms at ``cosine`` from the leaves, as a trained level 1 gives them."""
    rng = np.random.default_rng(seed + 100)
    e = rng.standard_normal(leaves.shape)
    e -= (e * leaves).sum(1, keepdims=True) * leaves
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    return cosine * leaves + np.sqrt(1 - cosine**2) * e


DEFAULT_RATIO = LevelConfig.model_fields["settle_ratio"].default
DEFAULT_Z = LevelConfig.model_fields["settle_z"].default


SHAPES = {  # branching top-down and similarity bottom-up, widths 2.5x the truth. Shapes where the
    # rule does not hold yet (depth 4, a mid level at similarity 0.55): docs/cascade.md, "Limits"
    "depth2_uneven": ([[1, 2, 3, 4, 5, 6, 7, 8, 3, 5, 2, 6]], [0.7]),
    "depth3_mixed": ([[3, 5, 2, 4], [2, 4, 1, 3, 5, 2, 3, 4, 2, 6, 3, 1, 4, 2]], [0.75, 0.65]),
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("seed", [0, 1])
def test_defaults_recover_every_level_of_varied_hierarchies(shape, seed):
    branching, similarity = SHAPES[shape]
    levels, ancestors = tree(seed, branching, similarity)
    sizes = [len(level) for level in levels]
    atoms = learned_atoms(levels[0], seed)
    found = settle_bottom_up(atoms, [int(2.5 * n) for n in sizes[1:]], DEFAULT_RATIO, DEFAULT_Z)
    for level, labels in enumerate(found, start=2):
        score = level_agreement(level, ancestors[level - 1], labels, sizes[level - 1])
        assert score.f1 >= 0.9, (level, score)
        assert abs(score.n_learned_used - sizes[level - 1]) <= 0.25 * sizes[level - 1], (level, score)


def two_grandparents(dim: int = 256, s: float = 0.75, s_up: float = 0.8):
    """Two grandparents; under each two parents at cosine ``s_up``; under each parent 5 children
    at cosine ``s``. Families: 4; their pairwise-cosine ratio cousins/siblings is s_up²."""
    levels, ancestors = tree(3, [[2, 2], [5, 5, 5, 5]], [s, s_up], dim)
    return learned_atoms(levels[0], 3, 0.99), ancestors[1]


def test_noise_rule_keeps_close_cousins_apart_and_joins_split_families():
    """Cousins at ratio s_up² = 0.81 differ by many standard errors: four families, not two."""
    atoms, family = two_grandparents(s_up=0.9)
    labels = distinct_clusters(atoms, 12, None, DEFAULT_Z)  # 12 > 4: families start split
    assert labels.max() + 1 == 4
    assert level_agreement(2, family, labels, 4).f1 == 1.0


def test_ratio_rule_joins_families_at_or_above_its_ratio():
    atoms, family = two_grandparents(s_up=0.9)
    labels = distinct_clusters(atoms, 12, 0.7, DEFAULT_Z)  # cousin ratio 0.81 ≥ 0.7: one per grandparent
    assert labels.max() + 1 == 2
    assert level_agreement(2, family // 2, labels, 2).f1 == 1.0


def test_cousin_ratio_is_the_ratio_of_families_under_one_grandparent():
    """Three grandparents of three families each, parents at s' = 0.8: the related pairs of the
    nine families are the cousins, whose ratio x_ce / √(w_c w_e) is s'² = 0.64."""
    levels, ancestors = tree(4, [[3, 3, 3], [5] * 9], [0.75, 0.8], 256)
    atoms = learned_atoms(levels[0], 4, 0.99)
    family = ancestors[1]
    similarity = atoms @ atoms.T
    nearest = np.max(similarity - 4.0 * np.eye(len(atoms)), axis=1)
    stats = pair_statistics(similarity, family, None, DEFAULT_Z, atoms.shape[1], nearest)
    assert np.triu(stats.related, 1).sum() == 9  # 3 pairs under each grandparent, none across
    assert cousin_ratio(stats) == pytest.approx(0.64, abs=0.05)


def small_families_found(cousins: bool, draws: int = 20) -> tuple[float, float]:
    """Mean F1 and mean count found over ``draws`` two-level trees in R^192: 18 families of 1-4
    children at s = 0.6 under six grandparents at s' = 0.7 (cousin ratio 0.49); widths 2.5x."""
    counts = [1, 2, 3, 1, 2, 4, 2, 1, 3, 2, 2, 1, 3, 1, 2, 4, 1, 2]
    f1, found = [], []
    for seed in range(draws):
        levels, ancestors = tree(seed, [[3] * 6, counts], [0.6, 0.7], 192)
        labels = distinct_clusters(learned_atoms(levels[0], seed), 45, DEFAULT_RATIO, DEFAULT_Z, cousins)
        score = level_agreement(2, ancestors[1], labels, len(counts))
        f1.append(score.f1)
        found.append(score.n_learned_used)
    return float(np.mean(f1)), float(np.mean(found))


def test_cousin_pass_keeps_small_families_apart_from_their_cousins():
    """A family of one or two children has too few pairs for the noise test to tell it from a
    cousin family; a merge that also needs a ratio nearer the level's merged halves than its cousins
    keeps it apart (measured over 20 draws: F1 0.91, 16.5 of 18 found; the noise test alone 0.73, 11.6)."""
    f1, found = small_families_found(cousins=True)
    assert f1 >= 0.88 and found >= 15
    f1_noise_only, found_noise_only = small_families_found(cousins=False)
    assert f1_noise_only <= 0.8 and found_noise_only <= 13


def test_cousin_pass_rejoins_the_halves_of_loose_families():
    """Halves of a loose family (s = 0.55, 4-6 children), as the linkage selects them, have ratios
    well below 1; the boundary sits midway from the ratio of the halves the first pass merged, not
    from 1, so they are still rejoined (measured over 20 draws: 12.7 of 12 found, F1 0.93; with the
    boundary midway from 1, 15.1 and 0.89)."""
    f1, found = [], []
    for seed in range(20):
        levels, ancestors = tree(seed, [[3] * 4, [5, 6, 4] * 4], [0.55, 0.75], 192)
        labels = distinct_clusters(learned_atoms(levels[0], seed), 30, DEFAULT_RATIO, DEFAULT_Z)
        score = level_agreement(2, ancestors[1], labels, 12)
        f1.append(score.f1)
        found.append(score.n_learned_used)
    assert np.mean(f1) >= 0.9 and np.mean(found) <= 13.5


@pytest.mark.parametrize("n", [2, 3, 5, 12, 40])
def test_split_z_shares_the_level_among_the_splits(n):
    splits = 2.0 ** (n - 1) - 1
    assert split_z(3.0, np.array([n]))[0] == pytest.approx(norm.isf(norm.sf(3.0) / splits), rel=1e-9)


def rejoined_families(draws: int = 200) -> int:
    """Of ``draws`` single families of 4-10 children (s in [0.5, 0.85], R^128), each cut into as
    many clusters as it has members, how many come back as one cluster."""
    rng = np.random.default_rng(7)
    rejoined = 0
    for _ in range(draws):
        n, s = int(rng.integers(4, 11)), rng.uniform(0.5, 0.85)
        parent = rng.standard_normal(128)
        parent /= np.linalg.norm(parent)
        residual = rng.standard_normal((n, 128))
        residual /= np.linalg.norm(residual, axis=1, keepdims=True)
        children = s * parent + np.sqrt(1 - s * s) * residual
        children /= np.linalg.norm(children, axis=1, keepdims=True)
        rejoined += distinct_clusters(children, n, None, DEFAULT_Z).max() == 0
    return rejoined


def test_one_family_cut_into_pieces_is_rejoined(monkeypatch):
    """The gap of the best split of one family stays within z_n; the plain z, blind to the choice
    of the split among many, keeps pieces apart far more often."""
    assert rejoined_families(200) >= 0.9 * 200
    monkeypatch.setattr(settle, "split_z", lambda z, n: np.full(np.shape(n), z))
    assert rejoined_families(200) < 0.75 * 200


def loose_pairs_kept(draws: int = 40) -> int:
    """Of ``draws`` two-level trees in R^192 whose families differ in cohesion (six families of
    3-6 children at s = 0.85, four of 2 children at s = 0.55; widths 2.5x), how many keep every
    loose pair as one concept of its own and find the ten families."""
    rng = np.random.default_rng(11)
    counts = np.array([3, 4, 5, 6, 4, 5, 2, 2, 2, 2])
    s = np.array([0.85] * 6 + [0.55] * 4)
    kept = 0
    for _ in range(draws):
        roots = rng.standard_normal((len(counts), 192))
        roots /= np.linalg.norm(roots, axis=1, keepdims=True)
        family = np.repeat(np.arange(len(counts)), counts)
        residual = rng.standard_normal((len(family), 192))
        residual /= np.linalg.norm(residual, axis=1, keepdims=True)
        leaves = s[family, None] * roots[family] + np.sqrt(1 - s[family, None] ** 2) * residual
        labels = distinct_clusters(learned_atoms(leaves / np.linalg.norm(leaves, axis=1, keepdims=True), 0),
                                   25, None, DEFAULT_Z)
        loose = family >= 6
        kept += (labels.max() + 1 == len(counts)
                 and all(len(set(labels[family == f])) == 1 for f in range(6, len(counts)))
                 and len(set(labels[loose])) == 4)
    return kept


def test_a_loose_family_is_not_held_to_the_cohesion_of_tight_ones():
    """A singleton's reference cohesion is bounded by its similarity to its nearest item: with the
    median cohesion of the (tight) clusters alone, the two members of a loose family look like two
    concepts (measured: 33 of 40 kept here, 0 with the median alone)."""
    assert loose_pairs_kept(40) >= 30


def test_clusters_do_not_depend_on_rotation():
    atoms, _ = two_grandparents(dim=64)
    rotation = np.linalg.qr(np.random.default_rng(0).standard_normal((64, 64)))[0]
    base = distinct_clusters(atoms, 10, DEFAULT_RATIO, DEFAULT_Z)
    assert np.array_equal(distinct_clusters(atoms @ rotation, 10, DEFAULT_RATIO, DEFAULT_Z), base)


def test_unrelated_directions_stay_apart():
    atoms = np.linalg.qr(np.random.default_rng(1).standard_normal((32, 12)))[0].T
    assert distinct_clusters(atoms, 30, DEFAULT_RATIO, DEFAULT_Z).max() + 1 == 12


def settled_cascade(build_cascade, planted, stop_gradient="bilateral"):
    levels = [{"n_latents": 32, "encoder": {"name": "topk", "k": 2}},
              {"n_latents": 40, "encoder": {"name": "topk", "k": 1}, "start_step": 150, "settle_every": 25},
              {"n_latents": 48, "encoder": {"name": "topk", "k": 1}, "start_step": 150, "settle_every": 25}]
    cascade = build_cascade(16, levels, stop_gradient=stop_gradient)
    optimizer = torch.optim.Adam(cascade.parameters(), lr=3e-3)
    x = planted(512)
    for step in range(201):
        out = cascade(x[torch.randint(0, 512, (64,))], step=step)
        optimizer.zero_grad()
        out.loss.backward()
        cascade.after_backward()
        optimizer.step()
        cascade.after_step()
    return cascade, x


def test_pruned_latents_never_fire_nor_reach_the_level_above(build_cascade, planted_hierarchy):
    """Each level is wider than the atoms below it, so some of its latents must be pruned."""
    cascade, x = settled_cascade(build_cascade, planted_hierarchy)
    for l in (2, 3):
        concepts = cascade.concepts[str(l)]
        assert 0 < concepts.count < cascade.level(l).n_latents
        pruned = ~concepts.alive
        assert (cascade.level(l).b_enc[pruned] == PRUNED_BIAS).all()
        assert not cascade.level(l).b_dec.any()
    out = cascade(x, step=201)
    level2 = out.levels[1]
    assert not level2.z[:, ~cascade.concepts["2"].alive].any()
    assert level2.n_active <= cascade.concepts["2"].count  # only unpruned latents reach level 3
    assert out.levels[2].n_inputs == level2.n_active


def test_settling_is_off_unless_asked(build_cascade):
    cascade = build_cascade(8, [{"n_latents": 8, "encoder": {"name": "topk", "k": 1}},
                                {"n_latents": 4, "encoder": {"name": "topk", "k": 1}}])
    assert not any(key.startswith("concepts.") for key in cascade.state_dict())
