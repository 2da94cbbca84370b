"""Theorem B.2: prefix reuse amplifies the Matryoshka semantic error, on random valid configurations."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.errors import BadInput
from appendix_b.matryoshka_surrogate import (
    affected_prefixes,
    amplification_chain,
    local_matryoshka_error,
    make_prefix_surrogate,
    nuisance_counts_per_prefix,
    nuisance_mismatch_bound,
    prefix_mismatches,
    repair_space,
    total_prefix_mismatch,
)
from appendix_b.prefix_reuse import prefix_reuse_counts
from appendix_b.projectors import line_projector_distance_sq
from appendix_b.random_configs import random_orthonormal, random_prefix_surrogate, random_unit_vectors

SETTINGS = settings(max_examples=60, deadline=None)
TOL = 1e-8


@st.composite
def configurations(draw, noise=st.one_of(st.just(0.0), st.floats(0.0, 3.0))):
    sizes = sorted(draw(st.lists(st.integers(1, 7), min_size=1, max_size=4, unique=True)))
    nuisance_total = draw(st.integers(0, min(sizes[-1], 3)))
    positions = draw(st.lists(st.integers(1, sizes[-1]), min_size=nuisance_total, max_size=nuisance_total, unique=True))
    ambient = sizes[-1] + nuisance_total + draw(st.integers(0, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return random_prefix_surrogate(rng, ambient, sizes, positions, draw(noise)), rng


@SETTINGS
@given(configurations())
def test_generated_configurations_satisfy_the_assumptions(config):
    surrogate, _ = config
    decoder = surrogate.decoder
    assert np.allclose(decoder.T @ decoder, np.eye(decoder.shape[1]), atol=TOL)
    nuisance = decoder[:, surrogate.nuisance_positions - 1]
    for size, basis in zip(surrogate.prefix_sizes, surrogate.target_bases):
        assert basis.shape[1] == size
        assert np.max(np.abs(basis.T @ nuisance), initial=0.0) < TOL


@SETTINGS
@given(configurations())
def test_total_mismatch_is_at_least_twice_the_summed_reuse(config):
    surrogate, _ = config
    mismatches = prefix_mismatches(surrogate)
    counts = nuisance_counts_per_prefix(surrogate)
    for k, mismatch in enumerate(mismatches):  # per prefix: tr(P_D P_S) <= m_k - |Q_k|
        trace = np.sum((surrogate.prefix_basis(k).T @ surrogate.target_bases[k]) ** 2)
        assert trace <= surrogate.prefix_sizes[k] - counts[k] + TOL
        assert mismatch >= 2 * counts[k] - TOL
    reuse = prefix_reuse_counts(surrogate.prefix_sizes, surrogate.nuisance_positions) if surrogate.nuisance_count else np.zeros(0)
    assert np.sum(counts) == np.sum(reuse)  # Σ_k |Q_k| = Σ_q r(j_q)
    assert math.isclose(nuisance_mismatch_bound(surrogate), 2 * np.sum(reuse))
    assert total_prefix_mismatch(surrogate) >= nuisance_mismatch_bound(surrogate) - TOL
    assert nuisance_mismatch_bound(surrogate) >= 2 * surrogate.nuisance_count


@SETTINGS
@given(configurations(noise=st.just(0.0)))
def test_bound_is_attained_by_tight_configurations(config):
    surrogate, _ = config
    assert np.allclose(prefix_mismatches(surrogate), 2 * nuisance_counts_per_prefix(surrogate), atol=TOL)
    assert math.isclose(total_prefix_mismatch(surrogate), nuisance_mismatch_bound(surrogate), abs_tol=TOL)


@SETTINGS
@given(configurations())
def test_every_admissible_repair_reduces_the_prefix_mismatch_by_exactly_two(config):
    surrogate, rng = config
    for q in range(surrogate.nuisance_count):
        affected = affected_prefixes(surrogate, q)
        assert affected.size == prefix_reuse_counts(surrogate.prefix_sizes, surrogate.nuisance_positions[q])
        for k in affected:
            space = repair_space(surrogate, q, int(k))
            assert space.shape[1] >= 1
            repair = space @ random_unit_vectors(rng, 1, space.shape[1])[0]
            others = np.delete(surrogate.prefix_basis(int(k)), surrogate.nuisance_positions[q] - 1, axis=1)
            assert math.isclose(np.linalg.norm(surrogate.target_bases[k].T @ repair), 1.0, abs_tol=TOL)
            assert np.max(np.abs(others.T @ repair), initial=0.0) < TOL
            assert math.isclose(local_matryoshka_error(surrogate, q, int(k)), 2.0, abs_tol=TOL)
            assert math.isclose(local_matryoshka_error(surrogate, q, int(k), repair), 2.0, abs_tol=TOL)


@SETTINGS
@given(configurations(), st.floats(0.0, 1.0))
def test_normalised_matryoshka_error_bounds_the_csae_error(config, wrong_share):
    surrogate, rng = config
    count, dim = surrogate.nuisance_count, surrogate.decoder.shape[0]
    ideal = random_unit_vectors(rng, count, dim)
    assigned = random_unit_vectors(rng, count, dim)
    for i in np.flatnonzero(rng.uniform(size=count) < wrong_share):  # the worst case: an orthogonal parent
        off_line = assigned[i] - (assigned[i] @ ideal[i]) * ideal[i]
        assigned[i] = off_line / np.linalg.norm(off_line)
    for u, v in zip(ideal, assigned):
        assert math.isclose(line_projector_distance_sq(u, v), 2 * (1 - (u @ v) ** 2), abs_tol=TOL)
        assert line_projector_distance_sq(u, v) <= 2 + TOL
    chain = amplification_chain(surrogate, ideal, assigned)
    assert math.isclose(chain.normalised_matryoshka_error, 2 * count, abs_tol=TOL)
    assert chain.csae_error <= chain.normalised_matryoshka_error + TOL
    assert chain.normalised_matryoshka_error <= chain.reuse_bound + TOL
    assert chain.reuse_bound <= chain.total_mismatch + TOL


def test_invalid_configurations_are_rejected():
    rng = np.random.default_rng(0)
    frame = random_orthonormal(rng, 4, 4)
    decoder, target = frame[:, :2], frame[:, :2]
    with pytest.raises(BadInput, match="orthogonal to every target"):
        make_prefix_surrogate(decoder, [2], [target], [1])
    with pytest.raises(BadInput, match="orthonormal"):
        make_prefix_surrogate(2 * decoder, [2], [target], [])
    with pytest.raises(BadInput, match="dimension m_k"):
        make_prefix_surrogate(decoder, [1, 2], [target, target], [])
    surrogate = make_prefix_surrogate(decoder, [1, 2], [frame[:, 2:3], frame[:, 2:]], [1])
    with pytest.raises(BadInput, match="not in prefix"):
        local_matryoshka_error(random_prefix_surrogate(rng, 6, [1, 2], [2], 0.0), 0, 0)
    with pytest.raises(BadInput, match="unit vector inside S_k"):
        local_matryoshka_error(surrogate, 0, 1, frame[:, 0])
    with pytest.raises(BadInput, match="too small"):
        random_prefix_surrogate(rng, 3, [2, 3], [1], 0.0)
