"""Lemma B.4 (projector distance identity) and Lemma B.5 (lines), checked against direct Frobenius norms."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.errors import BadInput
from appendix_b.projectors import line_projector_distance_sq, orthonormal_basis, projector, projector_distance_sq

SETTINGS = settings(max_examples=80, deadline=None)


def spanning_set(rng: np.random.Generator, dim: int, rank: int, columns: int) -> np.ndarray:
    """``columns`` vectors of R^dim spanning a random subspace of dimension exactly ``rank`` (redundant when columns > rank)."""
    basis = np.linalg.qr(rng.standard_normal((dim, dim)))[0][:, :rank]
    return basis @ rng.standard_normal((rank, columns))


@st.composite
def two_subspaces(draw):
    dim = draw(st.integers(1, 8))
    rank_u, rank_v = draw(st.integers(0, dim)), draw(st.integers(0, dim))
    extra_u, extra_v = draw(st.integers(0, 3)), draw(st.integers(0, 3))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return (spanning_set(rng, dim, rank_u, rank_u + extra_u), rank_u,
            spanning_set(rng, dim, rank_v, rank_v + extra_v), rank_v)


@SETTINGS
@given(two_subspaces())
def test_projector_is_the_orthogonal_projector_of_the_span(data):
    span_u, rank_u, _, _ = data
    p_u = projector(span_u)
    assert np.allclose(p_u, p_u.T, atol=1e-10)
    assert np.allclose(p_u @ p_u, p_u, atol=1e-10)
    assert math.isclose(np.trace(p_u), rank_u, abs_tol=1e-9)
    assert np.allclose(p_u @ span_u, span_u, atol=1e-9)


@SETTINGS
@given(two_subspaces())
def test_lemma_b4_identity_matches_direct_frobenius_norm(data):
    span_u, rank_u, span_v, rank_v = data
    p_u, p_v = projector(span_u), projector(span_v)
    direct = np.linalg.norm(p_u - p_v, "fro") ** 2
    assert math.isclose(projector_distance_sq(span_u, span_v), direct, abs_tol=1e-9)
    assert math.isclose(direct, rank_u + rank_v - 2 * np.trace(p_u @ p_v), abs_tol=1e-9)


@SETTINGS
@given(st.integers(1, 8), st.data())
def test_lemma_b4_equal_dimension_case(dim, data):
    rank = data.draw(st.integers(0, dim))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    span_u, span_v = spanning_set(rng, dim, rank, rank), spanning_set(rng, dim, rank, rank)
    p_u, p_v = projector(span_u), projector(span_v)
    direct = np.linalg.norm(p_u - p_v, "fro") ** 2
    assert math.isclose(projector_distance_sq(span_u, span_v), direct, abs_tol=1e-9)
    assert math.isclose(direct, 2 * (rank - np.trace(p_u @ p_v)), abs_tol=1e-9)


@SETTINGS
@given(st.integers(2, 8), st.floats(0, math.pi), st.floats(0.1, 10), st.floats(-10, -0.1), st.integers(0, 2**32 - 1))
def test_lemma_b5_line_distance(dim, angle, scale_u, scale_v, seed):
    rng = np.random.default_rng(seed)
    frame = np.linalg.qr(rng.standard_normal((dim, 2)))[0]
    u, w = frame[:, 0], frame[:, 1]
    v = math.cos(angle) * u + math.sin(angle) * w
    direct = np.linalg.norm(np.outer(u, u) - np.outer(v, v), "fro") ** 2
    assert math.isclose(line_projector_distance_sq(u, v), 2 * (1 - (u @ v) ** 2), abs_tol=1e-9)
    assert math.isclose(line_projector_distance_sq(u, v), direct, abs_tol=1e-9)
    assert math.isclose(direct, 2 * math.sin(angle) ** 2, abs_tol=1e-9)
    # the distance depends on the lines only, not on the length or sign of the spanning vectors
    assert math.isclose(line_projector_distance_sq(scale_u * u, scale_v * v), direct, abs_tol=1e-9)
    assert math.isclose(projector_distance_sq(u, v), direct, abs_tol=1e-9)


def test_bad_inputs_are_rejected():
    with pytest.raises(BadInput, match="different lengths"):
        line_projector_distance_sq(np.ones(3), np.ones(4))
    with pytest.raises(BadInput, match="nonzero"):
        line_projector_distance_sq(np.zeros(3), np.ones(3))
    with pytest.raises(BadInput, match="one space"):
        projector_distance_sq(np.ones((3, 1)), np.ones((4, 1)))
    with pytest.raises(BadInput, match="NaN"):
        orthonormal_basis(np.array([[np.nan], [1.0]]))
