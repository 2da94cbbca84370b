"""HMS (spec §7, Eq. 28-32 / 40-45): brute-force agreement, invariances, streaming, the null."""

from __future__ import annotations

import itertools
import json
import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.errors import BadInput
from hsae.metrics.hms import children_mean, hms_by_level, hms_report, parent_hms, semantic_vectors

SEEDS = st.integers(0, 2**31 - 1)


# --------------------------------------------------------------------------- references


def _source(acts: torch.Tensor, emb: torch.Tensor, size: int):
    return lambda: ((acts[i : i + size], emb[i : i + size]) for i in range(0, acts.shape[0], size))


def _all_weighting_in_memory(acts: torch.Tensor, emb: torch.Tensor, eps: float) -> torch.Tensor:
    """Eq. 28-29 on the whole matrix at once; units that never fire: NaN rows; alive units that
    never vary: the mean embedding (spec §7)."""
    lo, hi = acts.amin(0), acts.amax(0)
    normed = (acts - lo) / (hi - lo + eps)
    out = (normed.T @ emb) / (normed.sum(0) + eps)[:, None]
    out[hi - lo <= eps] = emb.mean(0)
    out[hi <= 0] = torch.nan
    return out


def _top_m_brute_force(acts: np.ndarray, emb: np.ndarray, m: int) -> np.ndarray:
    """Per unit: rank images by (−activation, stream position), keep the first m above the minimum;
    NaN for a unit that never fires, the mean embedding for one with no image above its minimum."""
    out = np.zeros((acts.shape[1], emb.shape[1]))
    for unit in range(acts.shape[1]):
        column = acts[:, unit]
        order = sorted(range(len(column)), key=lambda n: (-column[n], n))[:m]
        chosen = [n for n in order if column[n] > column.min()]
        out[unit] = emb[chosen].mean(0) if chosen else emb.mean(0)
        if column.max() <= 0:
            out[unit] = np.nan
    return out


def _cos(u: np.ndarray, v: np.ndarray) -> float:
    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
    return 0.0 if nu == 0 or nv == 0 else float(u @ v / (nu * nv))


def _brute_force_hms(vectors: np.ndarray, parents: np.ndarray, n_parents: int) -> np.ndarray:
    """Eq. 31/44 with an explicit loop over unordered child pairs."""
    scores = np.full(n_parents, np.nan)
    for k in range(n_parents):
        children = np.flatnonzero(parents == k)
        if len(children) >= 2:
            pairs = list(itertools.combinations(children, 2))
            scores[k] = np.mean([_cos(vectors[i], vectors[j]) for i, j in pairs])
    return scores


def _random_case(seed: int, n_images: int, n1: int, dim: int):
    g = torch.Generator().manual_seed(seed)
    acts = torch.randn(n_images, n1, generator=g, dtype=torch.float64).relu()
    emb = torch.randn(n_images, dim, generator=g, dtype=torch.float64)
    return acts, emb


def _planted(seed: int, n_clusters: int = 4, units_per_cluster: int = 5, images_per_cluster: int = 30):
    """Images in tight clusters of the embedding space; each unit fires on one cluster's images only."""
    g = torch.Generator().manual_seed(seed)
    dim = 16
    centres = torch.randn(n_clusters, dim, generator=g, dtype=torch.float64) * 3
    cluster_of_image = torch.arange(n_clusters).repeat_interleave(images_per_cluster)
    emb = centres[cluster_of_image] + 0.3 * torch.randn(len(cluster_of_image), dim, generator=g, dtype=torch.float64)
    cluster_of_unit = torch.arange(n_clusters).repeat_interleave(units_per_cluster)
    fires = cluster_of_image[:, None] == cluster_of_unit[None, :]
    acts = torch.rand(len(cluster_of_image), len(cluster_of_unit), generator=g, dtype=torch.float64) * fires
    return acts, emb, cluster_of_unit


# --------------------------------------------------------------------------- pairwise formula


@st.composite
def groupings(draw):
    n_child = draw(st.integers(2, 14))
    dim = draw(st.integers(1, 5))
    n_parents = draw(st.integers(1, 5))
    parents = np.array(draw(st.lists(st.integers(-1, n_parents - 1), min_size=n_child, max_size=n_child)))
    vectors = np.random.default_rng(draw(SEEDS)).normal(size=(n_child, dim))
    zero_rows = draw(st.lists(st.integers(0, n_child - 1), max_size=2))
    vectors[zero_rows] = 0.0
    return vectors, parents, n_parents


@settings(max_examples=80, deadline=None)
@given(case=groupings())
def test_group_sum_formula_equals_pairwise_brute_force(case):
    vectors, parents, n_parents = case
    fast = parent_hms(torch.from_numpy(vectors), parents, n_parents).numpy()
    np.testing.assert_allclose(fast, _brute_force_hms(vectors, parents, n_parents), atol=1e-10)


# --------------------------------------------------------------------------- invariances


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, n1=st.integers(3, 9), n_parents=st.integers(1, 4), data=st.data())
def test_scores_do_not_depend_on_unit_or_parent_order(seed, n1, n_parents, data):
    acts, emb = _random_case(seed, 20, n1, 3)
    parents = np.array(data.draw(st.lists(st.integers(-1, n_parents - 1), min_size=n1, max_size=n1)))
    base = hms_report(semantic_vectors(_source(acts, emb, 6)), parents, n_parents, null_draws=0).per_parent

    unit_order = np.array(data.draw(st.permutations(range(n1))))
    permuted_units = semantic_vectors(_source(acts[:, unit_order], emb, 6))
    after_units = hms_report(permuted_units, parents[unit_order], n_parents, null_draws=0).per_parent
    np.testing.assert_allclose(np.sort(after_units), np.sort(base), atol=1e-10)

    relabel = np.array(data.draw(st.permutations(range(n_parents))))
    relabelled = np.where(parents >= 0, relabel[parents], -1)
    after_labels = hms_report(semantic_vectors(_source(acts, emb, 6)), relabelled, n_parents, null_draws=0).per_parent
    np.testing.assert_allclose(np.sort(after_labels), np.sort(base), atol=1e-10)


@settings(max_examples=30, deadline=None)
@given(
    seed=SEEDS,
    scale=st.floats(1e-3, 1e3),
    unit=st.integers(0, 5),
    alpha=st.floats(1e-2, 1e2),
    beta=st.floats(-10, 10),
    weighting=st.sampled_from(["all", "top_m"]),
)
def test_hms_ignores_embedding_scale_and_affine_changes_of_an_activation(seed, scale, unit, alpha, beta, weighting):
    acts, emb = _random_case(seed, 24, 6, 4)
    parents = np.array([0, 0, 0, 1, 1, -1])

    def scores(a, e):  # every unit alive: a shift may move a unit's maximum below 0, which would kill it
        vectors = semantic_vectors(_source(a, e, 5), weighting=weighting, top_m=4, eps=1e-12,
                                   alive=torch.ones(6, dtype=torch.bool))
        return parent_hms(vectors, parents, 2).numpy()

    base = scores(acts, emb)
    np.testing.assert_allclose(scores(acts, scale * emb), base, atol=1e-9)
    shifted = acts.clone()
    shifted[:, unit] = alpha * shifted[:, unit] + beta
    np.testing.assert_allclose(scores(shifted, emb), base, atol=1e-9)


# --------------------------------------------------------------------------- streaming


@settings(max_examples=30, deadline=None)
@given(seed=SEEDS, n_images=st.integers(1, 30), n1=st.integers(1, 6), data=st.data())
def test_streamed_vectors_equal_the_in_memory_computation(seed, n_images, n1, data):
    acts, emb = _random_case(seed, n_images, n1, 3)
    expected_all = _all_weighting_in_memory(acts, emb, 1e-8)
    expected_top = _top_m_brute_force(acts.numpy(), emb.numpy(), 3)
    for size in sorted({1, 3, 7, n_images, data.draw(st.integers(1, n_images + 2))}):
        torch.testing.assert_close(semantic_vectors(_source(acts, emb, size)), expected_all, rtol=1e-10, atol=1e-12,
                                   equal_nan=True)
        streamed_top = semantic_vectors(_source(acts, emb, size), weighting="top_m", top_m=3).numpy()
        np.testing.assert_allclose(streamed_top, expected_top, atol=1e-12, equal_nan=True)


@settings(max_examples=40, deadline=None)
@given(
    seed=SEEDS,
    n_images=st.integers(1, 25),
    n1=st.integers(1, 5),
    m=st.integers(1, 8),
    size=st.integers(1, 9),
    levels=st.integers(1, 4),
)
def test_top_m_equals_brute_force_with_ties_settled_by_stream_order(seed, n_images, n1, m, size, levels):
    rng = np.random.default_rng(seed)
    acts = rng.integers(0, levels, size=(n_images, n1)).astype(np.float64)  # few values: many ties
    emb = rng.normal(size=(n_images, 3))
    streamed = semantic_vectors(
        _source(torch.from_numpy(acts), torch.from_numpy(emb), size), weighting="top_m", top_m=m
    ).numpy()
    np.testing.assert_allclose(streamed, _top_m_brute_force(acts, emb, m), atol=1e-12, equal_nan=True)


class _TrackedSource:
    """A chunk source that builds every chunk on demand and watches which ones stay alive."""

    def __init__(self, n_chunks: int, rows: int, n1: int, dim: int) -> None:
        self.n_chunks, self.rows, self.n1, self.dim = n_chunks, rows, n1, dim
        self.calls = 0
        self.most_alive_before = 0
        self._refs: list[weakref.ref] = []

    def _chunk(self, chunk_no: int):
        g = torch.Generator().manual_seed(chunk_no)
        return torch.randn(self.rows, self.n1, generator=g).relu(), torch.randn(self.rows, self.dim, generator=g)

    def __call__(self):
        self.calls += 1
        for chunk_no in range(self.n_chunks):
            self.most_alive_before = max(self.most_alive_before, sum(r() is not None for r in self._refs))
            acts, emb = self._chunk(chunk_no)
            self._refs += [weakref.ref(acts), weakref.ref(emb)]
            yield acts, emb
            del acts, emb

    def materialised(self):
        chunks = [self._chunk(i) for i in range(self.n_chunks)]
        return torch.cat([a for a, _ in chunks]), torch.cat([e for _, e in chunks])


@pytest.mark.parametrize("weighting", ["all", "top_m"])
def test_semantic_vectors_hold_at_most_the_current_chunk(weighting):
    source = _TrackedSource(n_chunks=10, rows=4, n1=7, dim=3)
    vectors = semantic_vectors(source, weighting=weighting, top_m=3)
    assert source.calls == 2
    # while a chunk is built only the previous one (still bound in the consumer's loop) may live
    assert source.most_alive_before <= 2
    acts, emb = source.materialised()
    expected = (
        _all_weighting_in_memory(acts, emb, 1e-8)
        if weighting == "all"
        else torch.from_numpy(_top_m_brute_force(acts.double().numpy(), emb.double().numpy(), 3)).float()
    )
    torch.testing.assert_close(vectors, expected, rtol=1e-5, atol=1e-6)


# --------------------------------------------------------------------------- null and planted structure


def test_planted_coherent_partition_scores_far_above_its_null():
    acts, emb, cluster_of_unit = _planted(seed=3)
    vectors = semantic_vectors(_source(acts, emb, 17))
    report = hms_report(vectors, cluster_of_unit.numpy(), 4, null_draws=20, seed=0)
    assert report.n_parents == 4 and report.mean > 0.9
    assert report.null_mean < 0.5
    assert report.mean > report.null_mean + 5 * report.null_std


@settings(max_examples=15, deadline=None)
@given(seed=SEEDS, draw_seed=SEEDS)
def test_random_assignment_scores_like_its_null(seed, draw_seed):
    acts, emb, _ = _planted(seed)
    vectors = semantic_vectors(_source(acts, emb, 17))
    sizes = np.repeat(np.arange(4), [2, 4, 6, 8])
    parents = np.random.default_rng(draw_seed).permutation(sizes)
    # a draw's HMS is skewed (a parent of two units with near-equal vectors scores ≈ 1): with 20
    # draws the mean strayed 5.4 standard errors (seed 1, draw_seed 56024); with 400, at most 3.0
    # over 200 draw seeds
    draws = 400
    report = hms_report(vectors, parents, 4, null_draws=draws, seed=draw_seed)
    # the data's HMS is itself one draw from the null distribution
    assert abs(report.mean - report.null_mean) <= 5 * report.null_std + 1e-9
    # and the null mean estimates the mean cosine over all pairs of parented units
    units = vectors / vectors.norm(dim=1, keepdim=True)
    n = len(units)
    expected = float((units.sum(0).pow(2).sum() - n) / (n * (n - 1)))
    assert abs(report.null_mean - expected) <= 5 * report.null_std / np.sqrt(draws) + 1e-9


def test_null_draws_only_from_units_that_have_a_parent():
    # parented units are orthonormal (every partition of them scores 0); orphans are all parallel
    vectors = torch.cat([torch.eye(5)[:4], torch.eye(5)[4].repeat(4, 1)])
    parents = np.array([0, 0, 1, 1, -1, -1, -1, -1])
    report = hms_report(vectors, parents, 2, null_draws=20)
    assert report.mean == 0.0 and report.null_mean == 0.0 and report.null_std == 0.0


def test_null_is_reproducible_for_a_seed():
    acts, emb, cluster_of_unit = _planted(seed=1)
    vectors = semantic_vectors(_source(acts, emb, 30))
    first = hms_report(vectors, cluster_of_unit.numpy(), 4, seed=7)
    assert first.to_dict() == hms_report(vectors, cluster_of_unit.numpy(), 4, seed=7).to_dict()
    assert first.null_draws == 20


# --------------------------------------------------------------------------- report and levels


def test_report_fields_and_json():
    nan = float("nan")  # a unit without a representation: out of its parent's C(k)
    vectors = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [nan, nan], [2.0, 0.0], [5.0, 5.0]])
    parents = np.array([0, 0, 0, 0, 2, -1])
    report = hms_report(vectors, parents, 4, null_draws=5)
    expected_p0 = np.mean([np.sqrt(0.5), 0.0, np.sqrt(0.5)])
    assert report.n_units == 4 and report.n_parents == 1
    assert report.mean == pytest.approx(expected_p0) and report.median == pytest.approx(expected_p0)
    assert report.children_count_histogram == {0: 2, 1: 1, 3: 1}
    assert report.n_orphans == 1 and report.n_unrepresented == 1
    assert np.isnan(report.per_parent[[1, 2, 3]]).all()
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["per_parent"][1:] == [None, None, None]
    assert data["children_count_histogram"] == {"0": 2, "1": 1, "3": 1}
    assert "per_parent" not in report.to_dict(per_parent=False)


def test_report_without_any_scored_parent_is_still_json():
    report = hms_report(torch.eye(3), np.array([0, 1, -1]), 2)
    data = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert data["n_parents"] == 0 and data["mean"] is None and data["null_mean"] is None


def test_levels_recurse_through_children_means():
    rng = np.random.default_rng(0)
    level1 = torch.from_numpy(rng.normal(size=(12, 4)))
    pi2 = np.array([0, 0, 1, 1, 1, 2, 2, 3, 3, 4, -1, 4])
    pi3 = np.array([0, 0, 1, 1, -1])
    reports = hms_by_level(level1, [pi2, pi3], top_level_size=2, null_draws=3)
    assert [r.level for r in reports] == [2, 3]
    level2 = np.stack([level1.numpy()[pi2 == k].mean(0) for k in range(5)])
    torch.testing.assert_close(children_mean(level1, pi2, 5), torch.from_numpy(level2))
    np.testing.assert_allclose(reports[0].per_parent, _brute_force_hms(level1.numpy(), pi2, 5), atol=1e-12)
    np.testing.assert_allclose(reports[1].per_parent, _brute_force_hms(level2, pi3, 2), atol=1e-12)
    assert reports[1].n_units == 2 and reports[1].n_orphans == 1


def test_three_levels_by_hand_with_a_dead_unit_and_a_childless_parent():
    """Spec §7: the never-firing level-1 unit 3 and the childless level-2 unit 3 take part in no
    pair (zero vectors would add cosine-0 pairs); the constant unit 5 gets the mean embedding."""
    emb = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [-1.0, 0.0]], dtype=torch.float64)
    acts = torch.tensor([[1.0, 2, 0, 0, 0, 1], [0, 0, 3, 0, 1, 1], [0, 2, 0, 0, 0, 1], [0, 0, 0, 0, 1, 1]],
                        dtype=torch.float64)
    vectors = semantic_vectors(_source(acts, emb, 3))
    s = {0: [1.0, 0.0], 1: [1.0, 0.5], 2: [0.0, 1.0], 4: [-0.5, 0.5], 5: [0.25, 0.5]}  # by hand, Eq. 28-29
    for unit, expected in s.items():
        np.testing.assert_allclose(vectors[unit].numpy(), expected, atol=1e-6)
    assert torch.isnan(vectors[3]).all()
    pi2 = np.array([0, 0, 1, 1, 1, 2])  # level-2 unit 3 has no children
    pi3 = np.array([0, 0, 1, 0])
    level2, level3 = hms_by_level(vectors, [pi2, pi3], top_level_size=2, null_draws=2)

    cos = lambda u, v: float(np.dot(u, v) / np.linalg.norm(u) / np.linalg.norm(v))  # noqa: E731
    hms2 = [cos(s[0], s[1]), cos(s[2], s[4])]  # parent 1 keeps units 2 and 4: unit 3 is dropped
    assert level2.n_parents == 2 and level2.mean == pytest.approx(np.mean(hms2), abs=1e-6)
    assert level2.n_unrepresented == 1 and level2.children_count_histogram == {0: 1, 1: 1, 2: 2}
    s2 = {0: np.mean([s[0], s[1]], 0), 1: np.mean([s[2], s[4]], 0)}  # Eq. 32 over represented children
    assert level3.n_parents == 1 and level3.mean == pytest.approx(cos(s2[0], s2[1]), abs=1e-6)
    assert level3.n_unrepresented == 1  # level-2 unit 3: no children, so no s^2, not a zero vector
    assert level3.mean != pytest.approx(cos(s2[0], s2[1]) / 3, abs=1e-3)  # what zero vectors would give


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("parents", "n_parents", "message"),
    [
        (np.array([0, 1, 2]), 2, r"expected -1 or 0..1"),
        (np.array([0, -2, 1]), 2, r"expected -1 or 0..1"),
        (np.array([0, 1]), 2, r"shape \(3,\)"),
        (np.array([0.0, 1.0, 1.0]), 2, "integer parent ids"),
        (np.array([0, 1, 1]), -1, "integer >= 0"),
    ],
)
def test_bad_parents_are_named(parents, n_parents, message):
    with pytest.raises(BadInput, match=message):
        parent_hms(torch.ones(3, 2), parents, n_parents)


def test_bad_chunk_sources_are_named():
    acts, emb = _random_case(0, 6, 3, 2)
    with pytest.raises(BadInput, match="weighting must be one of"):
        semantic_vectors(_source(acts, emb, 2), weighting="some")
    with pytest.raises(BadInput, match="eps must be > 0"):
        semantic_vectors(_source(acts, emb, 2), eps=0.0)
    with pytest.raises(BadInput, match="top_m must be a positive integer"):
        semantic_vectors(_source(acts, emb, 2), weighting="top_m", top_m=0)
    with pytest.raises(BadInput, match="acts has 2 rows but emb has 3"):
        semantic_vectors(lambda: iter([(acts[:2], emb[:3])]))
    with pytest.raises(BadInput, match="yielded no images"):
        semantic_vectors(lambda: iter([]))
    bad = acts.clone()
    bad[4, 1] = float("nan")
    with pytest.raises(BadInput, match="acts of image 4 holds a NaN"):
        semantic_vectors(_source(bad, emb, 3))
    once = ((acts[i : i + 2], emb[i : i + 2]) for i in range(0, 6, 2))
    with pytest.raises(BadInput, match="6 images on pass 1 and 0 on pass 2"):
        semantic_vectors(lambda: once)
    with pytest.raises(BadInput, match="need at least one parent array"):
        hms_by_level(torch.ones(3, 2), [], top_level_size=1)
