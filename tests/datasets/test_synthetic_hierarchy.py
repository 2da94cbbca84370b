"""The planted-hierarchy generator (hsae_plugins.datasets.planted) and its dataset plugin."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from hsae.errors import BadInput
from hsae.store.truth import load_truth
from hsae.store import ActivationStore, StoreWriter
from hsae_plugins.datasets.planted import (
    BLOCK_ROWS,
    HierarchyConfig,
    activations,
    build_tree,
    embeddings,
    n_blocks,
    sample_block,
)
from hsae_plugins.datasets.synthetic_hierarchy import SyntheticHierarchy


def config(**overrides) -> HierarchyConfig:
    return HierarchyConfig(**{"n_samples": 500, **overrides})


def test_tree_shapes_follow_branching_from_the_bottom_up():
    c = config(depth=3, n_roots=2, branching=[5, 3], width=16, embedding_dim=8)
    truth = build_tree(c).truth
    assert c.level_sizes == [30, 6, 2]
    assert [d.shape for d in truth.directions] == [(30, 16), (6, 16), (2, 16)]
    assert [p.shape for p in truth.parents] == [(30,), (6,)]
    assert np.bincount(truth.parents[0]).tolist() == [5] * 6
    assert np.bincount(truth.parents[1]).tolist() == [3, 3]
    for dirs in truth.directions:
        np.testing.assert_allclose(np.linalg.norm(dirs, axis=1), 1.0, rtol=1e-12)


def test_tree_and_samples_are_determined_by_the_seed():
    c = config()
    a, b = build_tree(c), build_tree(c)
    for x, y in zip(a.truth.directions + a.concept_embeddings, b.truth.directions + b.concept_embeddings):
        np.testing.assert_array_equal(x, y)
    block_a, block_b = sample_block(c, a, 0), sample_block(c, b, 0)
    np.testing.assert_array_equal(activations(c, a, block_a), activations(c, b, block_b))
    np.testing.assert_array_equal(embeddings(c, a, block_a), embeddings(c, b, block_b))
    other = config(seed=1)
    assert not np.allclose(build_tree(other).truth.leaves, a.truth.leaves)


def test_blocks_cover_the_samples_once():
    c = config(n_samples=2 * BLOCK_ROWS + 7)
    tree = build_tree(c)
    blocks = [sample_block(c, tree, b) for b in range(n_blocks(c))]
    spans = [(blk.start, len(blk.leaves)) for blk in blocks]
    assert spans == [(0, BLOCK_ROWS), (BLOCK_ROWS, BLOCK_ROWS), (2 * BLOCK_ROWS, 7)]


@settings(max_examples=8, deadline=None)
@given(st.floats(0.0, 0.95), st.integers(0, 2**16))
def test_children_sit_at_cosine_s_and_siblings_at_s_squared(s, seed):
    c = config(n_roots=20, branching=12, similarity=s, width=256, seed=seed)
    truth = build_tree(c).truth
    leaves, parent = truth.leaves, truth.parents[0]
    np.testing.assert_allclose((leaves * truth.directions[1][parent]).sum(1), s, atol=1e-9)
    cos = leaves @ leaves.T
    siblings = (parent[:, None] == parent[None, :]) & ~np.eye(len(parent), dtype=bool)
    assert cos[siblings].mean() == pytest.approx(s * s, abs=0.02)


def test_cousins_sit_at_the_product_of_squared_similarities():
    c = config(depth=3, n_roots=8, branching=[6, 6], similarity=[0.8, 0.7], width=256)
    truth = build_tree(c).truth
    grand = truth.ancestors(3)
    cos = truth.leaves @ truth.leaves.T
    cousins = (grand[:, None] == grand[None, :]) & (truth.parents[0][:, None] != truth.parents[0][None, :])
    assert cos[cousins].mean() == pytest.approx(0.8**2 * 0.7**2, abs=0.02)


def test_fixed_counts_and_full_cooccurrence_keep_every_sample_in_one_family():
    c = config(leaves_per_sample=3, count_distribution="fixed", sibling_cooccurrence=1.0)
    tree = build_tree(c)
    block = sample_block(c, tree, 0)
    assert block.leaves.shape == (500, 3) and (block.leaves >= 0).all()
    assert all(len(set(row)) == 3 for row in block.leaves.tolist())  # distinct leaves
    families = tree.truth.parents[0][block.leaves]
    assert (families == families[:, :1]).all()


def test_without_cooccurrence_families_mix_at_chance():
    c = config(
        leaves_per_sample=2, count_distribution="fixed", sibling_cooccurrence=0.0, n_samples=BLOCK_ROWS
    )
    tree = build_tree(c)
    families = tree.truth.parents[0][sample_block(c, tree, 0).leaves]
    chance = 3 / 47  # another of the 3 siblings among the 47 other leaves
    assert (families[:, 0] == families[:, 1]).mean() == pytest.approx(chance, abs=0.025)


def test_poisson_counts_have_the_requested_mean_and_magnitudes_their_range():
    c = config(leaves_per_sample=3.5, magnitude_range=(0.5, 2.0), n_samples=BLOCK_ROWS)
    block = sample_block(c, build_tree(c), 0)
    counts = (block.leaves >= 0).sum(1)
    assert counts.min() >= 1 and counts.mean() == pytest.approx(3.5, abs=0.15)
    on = block.magnitudes[block.leaves >= 0]
    assert on.min() >= 0.5 and on.max() <= 2.0
    assert (block.magnitudes[block.leaves < 0] == 0).all()


def test_activations_are_the_weighted_sum_of_leaves_plus_noise():
    c = config(noise_std=0.1)
    tree = build_tree(c)
    block = sample_block(c, tree, 0)
    residual = activations(c, tree, block) - block.coefficients(c.n_leaves) @ tree.truth.leaves
    assert residual.std() == pytest.approx(0.1, rel=0.05)
    clean = config(noise_std=0.0)
    x = activations(clean, tree, block)
    np.testing.assert_allclose(x, block.coefficients(c.n_leaves) @ tree.truth.leaves, rtol=1e-5, atol=1e-6)


def test_embeddings_of_samples_sharing_a_parent_are_closer():
    c = config(leaves_per_sample=1, count_distribution="fixed", n_samples=BLOCK_ROWS)
    tree = build_tree(c)
    block = sample_block(c, tree, 0)
    e = embeddings(c, tree, block)
    e = e / np.linalg.norm(e, axis=1, keepdims=True)
    leaf = block.leaves[:, 0]
    family = tree.truth.parents[0][leaf]
    cos = e @ e.T
    sibling_pairs = (family[:, None] == family[None, :]) & (leaf[:, None] != leaf[None, :])
    unrelated = family[:, None] != family[None, :]
    # Equal level weights: siblings share one of two unit components (cos ≈ 1/2), others none.
    assert cos[sibling_pairs].mean() > 0.35
    assert abs(cos[unrelated].mean()) < 0.05


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"depth": 1}, "depth"),
        ({"depth": 3, "branching": [4]}, "branching"),
        ({"depth": 3, "branching_max": [4]}, "branching_max"),
        ({"branching": 4, "branching_max": 3}, "branching_max"),
        ({"leaf_zipf": -1.0}, "leaf_zipf"),
        ({"similarity": 1.0}, "similarity"),
        ({"magnitude_range": (0.0, 1.0)}, "magnitude_range"),
        ({"leaves_per_sample": 2.5, "count_distribution": "fixed"}, "whole"),
        ({"leaves_per_sample": 100}, "exceeds"),
        ({"embedding_level_weights": [1.0]}, "embedding_level_weights"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_options_are_rejected(overrides, field):
    with pytest.raises(ValidationError, match=field):
        config(**overrides)


class Interrupt(Exception):
    pass


def plugin(**overrides) -> SyntheticHierarchy:
    options = {
        "n_samples": 2 * BLOCK_ROWS + 300, "width": 16, "n_roots": 3, "branching": 2, "embedding_dim": 4
    }
    return SyntheticHierarchy(SyntheticHierarchy.Config(**{**options, **overrides}))


def read_all(path: Path) -> dict[str, np.ndarray]:
    with ActivationStore(path) as store:
        truth = [f"truth/level{l}/{part}" for l in (1, 2) for part in ("directions", "parent")]
        names = ["embeddings", *truth]
        arrays = {name: store.read(name) for name in names if store.has(name)}
        arrays["activations"] = store.rows(0, store.n_rows)
        arrays["image_index"] = store.image_index()
        arrays["attrs"] = store.attrs
    return arrays


def test_the_store_holds_activations_embeddings_and_truth(tmp_path):
    source = plugin()
    seen = []
    source.write_store(tmp_path / "s.h5", progress=lambda done, total: seen.append((done, total)))
    stored = read_all(tmp_path / "s.h5")
    c, n = source.config, source.config.n_samples
    assert stored["activations"].shape == (n, 16)
    np.testing.assert_array_equal(stored["image_index"], np.arange(n))
    assert stored["embeddings"].shape == (n, 4)
    assert seen[-1] == (n, n) and len(seen) == n_blocks(c)
    assert stored["attrs"]["dataset"] == "synthetic_hierarchy"
    assert SyntheticHierarchy.Config(**stored["attrs"]["generator"]) == c
    assert "truth/level2/parent" not in stored  # the roots have no parent
    tree = build_tree(c)
    with ActivationStore(tmp_path / "s.h5") as store:
        truth = load_truth(store)
    for got, want in zip(truth.directions + truth.parents, tree.truth.directions + tree.truth.parents):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    last = sample_block(c, tree, n_blocks(c) - 1)
    np.testing.assert_array_equal(stored["activations"][last.start :], activations(c, tree, last))
    np.testing.assert_array_equal(stored["embeddings"][last.start :], embeddings(c, tree, last))


def test_an_interrupted_write_resumes_to_the_same_store(tmp_path):
    source = plugin()

    def stop_midway(done, total):
        if done > BLOCK_ROWS:
            raise Interrupt

    with pytest.raises(Interrupt):
        source.write_store(tmp_path / "resumed.h5", progress=stop_midway)
    assert not (tmp_path / "resumed.h5").exists()
    source.write_store(tmp_path / "resumed.h5")
    source.write_store(tmp_path / "straight.h5")
    resumed, straight = read_all(tmp_path / "resumed.h5"), read_all(tmp_path / "straight.h5")
    assert resumed.keys() == straight.keys()
    for name in resumed:
        if name == "attrs":
            assert resumed[name] == straight[name]
        else:
            np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_a_write_resumes_from_a_row_inside_a_block(tmp_path):
    source = plugin()
    c = source.config
    tree = build_tree(c)
    first = activations(c, tree, sample_block(c, tree, 0))[:1000]
    path = tmp_path / "resumed.h5"
    with pytest.raises(Interrupt):
        with StoreWriter(path, width=16, attrs=source.store_attrs(), with_image_index=True) as writer:
            writer.append(first, image_index=np.arange(1000))
            writer.commit()
            raise Interrupt
    source.write_store(path)
    source.write_store(tmp_path / "straight.h5")
    resumed, straight = read_all(path), read_all(tmp_path / "straight.h5")
    for name in ("activations", "image_index", "embeddings"):
        np.testing.assert_array_equal(resumed[name], straight[name], err_msg=name)


def test_a_finished_store_is_kept_or_refused_if_its_options_differ(tmp_path):
    path = tmp_path / "s.h5"
    plugin().write_store(path)
    before = path.stat().st_mtime_ns
    plugin().write_store(path)
    assert path.stat().st_mtime_ns == before
    with pytest.raises(BadInput, match="other options"):
        plugin(seed=1).write_store(path)


def test_without_branching_max_or_zipf_the_draws_are_those_of_earlier_releases():
    """Stores written before the two options existed are drawn again the same (numbers taken
    from the generator before they were added)."""
    c = config(depth=3, n_roots=3, branching=[3, 2], width=16, embedding_dim=8)
    tree = build_tree(c)
    block = sample_block(c, tree, 0)
    assert tree.truth.parents[0].tolist() == [1, 4, 0, 1, 4, 5, 4, 2, 3, 0, 0, 5, 5, 3, 2, 3, 2, 1]
    assert block.leaves[:3].tolist() == [[6, 12, 0, 17, 4, -1, -1, -1], [11, 10, 15, -1, -1, -1, -1, -1],
                                         [4, 1, 3, -1, -1, -1, -1, -1]]
    assert float(tree.truth.leaves.sum()) == pytest.approx(3.6859043860855647, abs=1e-12)
    assert float(activations(c, tree, block).sum()) == pytest.approx(274.4736022949219, rel=1e-6)
    same = config(depth=3, n_roots=3, branching=[3, 2], branching_max=[3, 2], width=16, embedding_dim=8)
    np.testing.assert_array_equal(build_tree(same).truth.leaves, tree.truth.leaves)


def test_branching_max_draws_each_concept_s_number_of_children():
    c = config(depth=3, n_roots=8, branching=[1, 2], branching_max=[8, 5], width=32, similarity=[0.6, 0.8])
    truth = build_tree(c).truth
    for parent, (fewest, most), n_above in zip(truth.parents, c.branching_ranges, (len(truth.directions[1]), 8)):
        counts = np.bincount(parent, minlength=n_above)
        assert fewest <= counts.min() and counts.max() <= most
        assert len(set(counts.tolist())) >= 3  # the counts vary from concept to concept
    for level, s in ((0, 0.6), (1, 0.8)):
        child, parent = truth.directions[level], truth.directions[level + 1][truth.parents[level]]
        np.testing.assert_allclose((child * parent).sum(1), s, atol=1e-12)
    assert c.level_sizes == [8 * 2 * 1, 8 * 2, 8]  # the fewest the draw can give


def test_leaf_zipf_sets_how_often_each_leaf_is_drawn():
    c = config(n_roots=10, branching=4, leaf_zipf=1.0, leaves_per_sample=1, count_distribution="fixed",
               sibling_cooccurrence=0.0, n_samples=20_000)
    tree = build_tree(c)
    drawn = np.concatenate([sample_block(c, tree, b).leaves[:, 0] for b in range(n_blocks(c))])
    observed = np.bincount(drawn, minlength=40)
    expected = c.n_samples * tree.leaf_weights / tree.leaf_weights.sum()
    np.testing.assert_allclose(np.sort(tree.leaf_weights), 1.0 / np.arange(40, 0, -1))  # ranks 1..40
    chi2 = ((observed - expected) ** 2 / expected).sum()  # 39 degrees of freedom: mean 39, sd 8.8
    assert chi2 < 80, chi2
    uniform = np.full(40, c.n_samples / 40)
    assert ((observed - uniform) ** 2 / uniform).sum() > 1000


def test_a_store_with_drawn_branching_holds_the_drawn_tree(tmp_path):
    source = plugin(branching=1, branching_max=4, leaf_zipf=1.1)
    source.write_store(tmp_path / "s.h5")
    tree = build_tree(source.config)
    with ActivationStore(tmp_path / "s.h5") as store:
        truth = load_truth(store)
        np.testing.assert_array_equal(truth.parents[0], tree.truth.parents[0])
        assert store.n_rows == source.config.n_samples
