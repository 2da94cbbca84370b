"""Proposition B.1: the nearest-prototype Level-2 encoder codes same-parent atoms with one support."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.errors import BadInput
from appendix_b.cluster_coding import (
    construct_cluster_encoder,
    prototype_gap,
    sample_clustered_atoms,
    separation_margin,
    support_inconsistency,
)


@st.composite
def clustered_atoms(draw):
    clusters = draw(st.integers(1, 5))
    dim = draw(st.integers(1, 6))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    prototypes = rng.standard_normal((clusters, dim)) * rng.uniform(0.1, 5.0, size=(clusters, 1))
    parents = np.concatenate([[0, 0], rng.integers(0, clusters, size=draw(st.integers(0, 20)))])
    rng.shuffle(parents)
    half_gap = 0.5 * prototype_gap(prototypes) if clusters > 1 else 1.0  # one cluster: any radius is admissible
    atoms = sample_clustered_atoms(rng, prototypes, parents, draw(st.floats(0.0, 0.999)) * half_gap)
    return prototypes, parents, atoms, rng


@settings(max_examples=100, deadline=None)
@given(clustered_atoms())
def test_same_parent_atoms_share_their_support(data):
    prototypes, parents, atoms, rng = data
    assert separation_margin(atoms, parents, prototypes) > 0
    codes = construct_cluster_encoder(prototypes).encode(atoms)
    assert np.array_equal(codes, np.eye(prototypes.shape[0])[parents])
    assert support_inconsistency(codes, parents) == 0.0
    pair = rng.choice(np.flatnonzero(parents == 0), size=2, replace=False)
    subset = np.union1d(pair, rng.choice(parents.size, size=rng.integers(0, parents.size + 1), replace=False))
    assert support_inconsistency(codes, parents, subset) == 0.0


def test_support_inconsistency_counts_differing_same_parent_pairs():
    # supports, not values, are compared: atoms 0 and 1 share the support {0, 2} with different magnitudes
    codes = np.array([[2.0, 0, 1.0], [0.5, 0, 3.0], [0, 1.0, 1.0], [0, 1.0, 0]])
    parents = np.array([0, 0, 0, 1])
    assert support_inconsistency(codes, parents) == pytest.approx(2 / 3)
    assert support_inconsistency(codes, parents, [0, 1, 3]) == 0.0
    assert support_inconsistency(codes, parents, [1, 2]) == 1.0
    with pytest.raises(BadInput, match="same-parent pair"):
        support_inconsistency(codes, parents, [0, 3])


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 6), st.floats(1.01, 1.9), st.integers(0, 2**32 - 1))
def test_violating_the_separation_condition_can_break_consistency(dim, overshoot, seed):
    """An atom of cluster 0 pushed past the bisector towards μ_1 is coded as cluster 1."""
    rng = np.random.default_rng(seed)
    prototypes = rng.standard_normal((2, dim))
    half_gap = 0.5 * prototype_gap(prototypes)
    towards = (prototypes[1] - prototypes[0]) / np.linalg.norm(prototypes[1] - prototypes[0])
    atoms = np.stack([prototypes[0], prototypes[0] + overshoot * half_gap * towards])
    parents = np.array([0, 0])
    assert separation_margin(atoms, parents, prototypes) < 0
    codes = construct_cluster_encoder(prototypes).encode(atoms)
    assert support_inconsistency(codes, parents) == 1.0


def test_coinciding_prototypes_are_rejected():
    with pytest.raises(BadInput, match="coincide"):
        construct_cluster_encoder(np.ones((2, 3)))
