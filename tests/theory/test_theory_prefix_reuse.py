"""Lemma B.6: the reuse count of a Matryoshka decoder position, against a brute-force count."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.errors import BadInput
from appendix_b.prefix_reuse import first_containing_prefix, prefix_reuse_count, prefix_reuse_counts

prefix_sizes = st.lists(st.integers(1, 60), min_size=1, max_size=8, unique=True).map(sorted)


@settings(max_examples=100, deadline=None)
@given(prefix_sizes)
def test_reuse_count_is_the_number_of_containing_prefixes(sizes):
    largest, count = sizes[-1], len(sizes)
    positions = np.arange(1, largest + 1)
    vectorised = prefix_reuse_counts(sizes, positions)
    for j in positions:
        brute_force = sum(1 for m_k in sizes if j <= m_k)
        assert prefix_reuse_count(sizes, int(j)) == brute_force == vectorised[j - 1]
        # closed form: with m_{t-1} < j <= m_t (m_0 = 0), r(j) = K - t + 1
        bounds = [0, *sizes]
        t = next(t for t in range(1, count + 1) if bounds[t - 1] < j <= bounds[t])
        assert first_containing_prefix(sizes, int(j)) == t
        assert brute_force == count - t + 1
    # earlier positions are reused at least as often; the first is in every prefix, the last in one
    assert np.all(np.diff(vectorised) <= 0)
    assert vectorised[0] == count and vectorised[-1] == 1


def test_bad_inputs_are_rejected():
    with pytest.raises(BadInput, match="strictly increasing"):
        prefix_reuse_count([3, 3, 5], 1)
    with pytest.raises(BadInput, match="positive"):
        prefix_reuse_count([0, 2], 1)
    with pytest.raises(BadInput, match="1..m_K"):
        prefix_reuse_count([2, 4], 5)
    with pytest.raises(BadInput, match="1..m_K"):
        prefix_reuse_count([2, 4], 0)
    with pytest.raises(BadInput, match="integers"):
        prefix_reuse_count([2.0, 4.0], 1)
