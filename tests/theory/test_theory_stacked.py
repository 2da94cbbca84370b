"""Lemmas B.1-B.3, Theorem B.1 and Remark B.1 (stacked SAE bottleneck), evaluated numerically."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.errors import BadInput
from appendix_b.random_configs import random_orthonormal
from appendix_b.sparse_packing import (
    greedy_packing,
    log_binomial,
    log_sparse_packing_lower,
    log_sparse_packing_upper,
    min_pairwise_distance,
    random_sparse_points,
    sparse_lattice_candidates,
)
from appendix_b.stacked_bottleneck import (
    bottleneck_separation,
    capacity_condition,
    capacity_gap,
    capacity_threshold_n,
    code_distance_lower_bound,
)

SETTINGS = settings(max_examples=40, deadline=None)


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 300), st.data())
def test_log_binomial_matches_exact_binomials(n, data):
    k = data.draw(st.integers(0, n))
    assert math.isclose(log_binomial(n, k), math.log(math.comb(n, k)), rel_tol=1e-12, abs_tol=1e-12)
    huge = 10**15 + n  # the regime of Remark B.1: lgamma differences would cancel catastrophically here
    small = data.draw(st.integers(0, 6))
    assert math.isclose(log_binomial(huge, small), math.log(math.comb(huge, small)), rel_tol=1e-12, abs_tol=1e-12)


# (a) Lemma B.3 is never beaten by an explicit packing -------------------------------------------------

@SETTINGS
@given(st.integers(1, 4), st.data())
def test_lemma_b3_bounds_greedy_packings(width, data):
    sparsity = data.draw(st.integers(1, min(width, 2)))
    radius = data.draw(st.floats(0.5, 3.0))
    delta = radius / data.draw(st.floats(0.2, 3.5 if sparsity == 1 else 2.5))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    lattice = sparse_lattice_candidates(width, sparsity, radius, delta)
    candidates = np.concatenate([rng.permutation(lattice), random_sparse_points(rng, 300, width, sparsity, radius)])
    packing = greedy_packing(candidates, delta * (1 - 1e-9))
    # the bound is applied at the separation and radius the packing really has (lattice rounding included)
    separation = min_pairwise_distance(packing)
    reach = max(radius, float(np.max(np.linalg.norm(packing, axis=1))))
    assert separation >= delta * (1 - 1e-9) and reach <= radius * (1 + 1e-9)
    assert np.all(np.count_nonzero(packing, axis=1) <= sparsity)
    if math.isfinite(separation):
        assert math.log(packing.shape[0]) <= log_sparse_packing_upper(width, sparsity, reach, separation) + 1e-12


def test_lemma_b3_is_attained_on_one_axis():
    """k' = m = 1: the points 0, ±δ', …, ±(R'/δ')δ' are a packing of exactly 1 + 2R'/δ' points."""
    packing = greedy_packing(sparse_lattice_candidates(1, 1, 3.0, 1.0), 1.0)
    assert packing.shape[0] == 7
    assert math.isclose(log_sparse_packing_upper(1, 1, 3.0, 1.0), math.log(7))


# (b) Lemma B.1: uniform reconstruction transfers separation to the bottleneck -------------------------

@SETTINGS
@given(st.integers(1, 6), st.data())
def test_lemma_b1_separation_transfer(n, data):
    k = data.draw(st.integers(1, n))
    m = n + data.draw(st.integers(0, 3))
    eta = data.draw(st.floats(0.0, 0.3))
    isotropic = data.draw(st.booleans())
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    # decoder g(u) = A u with full row rank; L = ||A||_2. Isotropic A (A Aᵀ = L² I) makes the lemma tight.
    if isotropic:
        decoder = data.draw(st.floats(0.2, 5.0)) * random_orthonormal(rng, m, n).T
    else:
        decoder = rng.standard_normal((n, m))
    lipschitz = np.linalg.norm(decoder, 2)
    inputs = random_sparse_points(rng, 12, n, k, 2.0)
    # encoder f(x) = A⁺(x + ε(x)): reconstruction errors of norm η, pairs (2i, 2i+1) pushed towards each other
    errors = np.zeros_like(inputs)
    for a in range(0, inputs.shape[0], 2):
        gap = inputs[a + 1] - inputs[a]
        if np.linalg.norm(gap) > 0:
            errors[a], errors[a + 1] = eta * gap / np.linalg.norm(gap), -eta * gap / np.linalg.norm(gap)
    codes = (np.linalg.pinv(decoder) @ (inputs + errors).T).T
    reconstructions = codes @ decoder.T
    assert np.all(np.linalg.norm(inputs - reconstructions, axis=1) <= eta + 1e-9)
    for a in range(inputs.shape[0]):
        for b in range(a + 1, inputs.shape[0]):
            bound = code_distance_lower_bound(np.linalg.norm(inputs[a] - inputs[b]), eta, lipschitz)
            assert np.linalg.norm(codes[a] - codes[b]) >= bound - 1e-9
    delta = min_pairwise_distance(inputs)
    if delta > 2 * eta:
        assert min_pairwise_distance(codes) >= bottleneck_separation(delta, eta, lipschitz) - 1e-9


# (c) the capacity condition of Theorem B.1 and Remark B.1 ---------------------------------------------

@st.composite
def geometry(draw):
    """R, R', δ, η, L, c with δ > 2η (Lemma B.1) and the universal constant c in (0, 1]."""
    delta = draw(st.floats(0.1, 2.0))
    return dict(R=delta * draw(st.floats(1.0, 10.0)), R_prime=delta * draw(st.floats(0.5, 40.0)), delta=delta,
                eta=delta * draw(st.floats(0.0, 0.4)), L=draw(st.floats(0.5, 4.0)), c=draw(st.floats(0.5, 1.0)))


@SETTINGS
@given(geometry(), st.integers(1, 6), st.data())
def test_capacity_condition_is_monotone_in_n(params, k, data):
    k_prime = data.draw(st.integers(1, 6))
    m = k_prime + data.draw(st.integers(0, 50))
    gaps = [capacity_gap(n, k, m, k_prime, **params) for n in range(k, k + 300)]
    assert np.all(np.diff(gaps) >= -1e-12)
    flags = [capacity_condition(n, k, m, k_prime, **params) for n in range(k, k + 300)]
    assert flags == sorted(flags)  # once the condition holds, it holds for every larger n


@SETTINGS
@given(geometry(), st.integers(2, 6), st.data())
def test_capacity_condition_flags_the_fixed_sparsity_regime(params, k, data):
    k_prime = data.draw(st.integers(1, k - 1))
    width_ratio = data.draw(st.floats(0.05, 1.0))
    threshold = capacity_threshold_n(k, k_prime, width_ratio, **params)
    for n in (threshold, 2 * threshold, 10 * threshold, 10**6 * threshold):
        for m in (k_prime, max(k_prime, math.floor(width_ratio * n))):
            assert capacity_condition(n, k, m, k_prime, **params)


@SETTINGS
@given(st.integers(1, 8), st.data())
def test_capacity_condition_spares_a_bottleneck_as_wide_and_sparse_as_the_input(k, data):
    """k' = k, m = n, R' >= R, L >= 1, c <= 2: the identity encoder/decoder reconstructs exactly, so the
    theorem must not declare uniform reconstruction impossible."""
    n = data.draw(st.integers(k, 10**6))
    delta = data.draw(st.floats(0.1, 2.0))
    radius = delta * data.draw(st.floats(0.1, 50.0))
    params = dict(R=radius, R_prime=radius * data.draw(st.floats(1.0, 3.0)), delta=delta,
                  eta=delta * data.draw(st.floats(0.0, 0.45)), L=data.draw(st.floats(1.0, 5.0)), c=data.draw(st.floats(0.1, 2.0)))
    assert not capacity_condition(n, k, n, k, **params)


@SETTINGS
@given(geometry(), st.integers(1, 6), st.integers(1, 6), st.floats(1.01, 3.0))
def test_worse_reconstruction_or_rougher_decoder_weakens_the_condition(params, k, k_prime, factor):
    """A larger η or L shrinks δ' = (δ − 2η)/L, which enlarges the bottleneck packing bound."""
    shape = dict(n=40, k=k, m=20, k_prime=k_prime)
    gap = capacity_gap(**shape, **params)
    assert capacity_gap(**shape, **{**params, "L": params["L"] * factor}) < gap
    larger_eta = min(params["eta"] * factor + 0.01 * params["delta"], 0.49 * params["delta"])
    assert capacity_gap(**shape, **{**params, "eta": larger_eta}) < gap


def test_capacity_condition_evaluates_the_paper_inequality():
    # n=10, k=3, m=4, k'=1, R=R'=1, δ=0.1, η=0, L=1, c=1: C(10,3)·10³ = 120000 > C(4,1)·21 = 84
    assert capacity_condition(10, 3, 4, 1, R=1.0, R_prime=1.0, delta=0.1, eta=0.0, L=1.0, c=1.0)
    assert math.isclose(capacity_gap(10, 3, 4, 1, R=1.0, R_prime=1.0, delta=0.1, eta=0.0, L=1.0, c=1.0),
                        math.log(120000 / 84))
    assert math.isclose(log_sparse_packing_lower(10, 3, 1.0, 0.1, 1.0), math.log(120000))
    # η = 0.02, L = 2: δ' = (0.1 − 0.04)/2 = 0.03, bottleneck bound C(4,1)·(1 + 2/0.03) = 812/3
    assert math.isclose(bottleneck_separation(0.1, 0.02, 2.0), 0.03)
    assert math.isclose(capacity_gap(10, 3, 4, 1, R=1.0, R_prime=1.0, delta=0.1, eta=0.02, L=2.0, c=1.0),
                        math.log(120000 / (812 / 3)))


def test_bad_inputs_are_rejected():
    with pytest.raises(BadInput, match="delta > 2\\*eta"):
        bottleneck_separation(1.0, 0.5, 1.0)
    with pytest.raises(BadInput, match="Lipschitz"):
        code_distance_lower_bound(1.0, 0.1, 0.0)
    with pytest.raises(BadInput, match="1 <= k_prime <= m"):
        log_sparse_packing_upper(2, 3, 1.0, 1.0)
    with pytest.raises(BadInput, match="sparser bottleneck"):
        capacity_threshold_n(2, 2, 1.0, R=1.0, R_prime=1.0, delta=0.1, eta=0.0, L=1.0, c=1.0)
    with pytest.raises(BadInput, match="c must be"):
        capacity_condition(10, 3, 4, 1, R=1.0, R_prime=1.0, delta=0.1, eta=0.0, L=1.0, c=0.0)
