"""Parents by co-activation (spec §6): π(i) = argmax_k #{n : a_i(n) > 0 ∧ b_k(n) > 0}."""

from __future__ import annotations

import numpy as np
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.methods.coactivation import CoactivationCounts, coactivation_parents


def test_a_hand_computed_example():
    # rows:        a0 a1 a2 a3      b0 b1 b2
    lower = torch.tensor([[1., 0, 2, 0], [3, 0, 0, 0], [1, 0, 1, 0], [0, 0, 5, 0], [2, 0, 0, 0]])
    upper = torch.tensor([[0., 1, 0], [0, 1, 0], [1, 0, 0], [1, 0, 2], [1, 0, 0]])
    # a0 fires on rows 0,1,2,4: with b0 on 2,4 (2), b1 on 0,1 (2), b2 never → tie → b0.
    # a1 never fires → −1. a2 fires on 0,2,3: b0 on 2,3 (2), b1 on 0 (1), b2 on 3 (1) → b0.
    # a3 never fires → −1.
    counts = CoactivationCounts(4, 3)
    counts.add(lower, upper)
    assert counts.counts.tolist() == [[2, 2, 0], [0, 0, 0], [2, 1, 1], [0, 0, 0]]
    assert counts.parents().tolist() == [0, -1, 0, -1]
    # Let b2 fire on rows 0 and 2 as well: a0 now ties b0 and b2 at 2 (lowest wins: b0), and
    # a2 counts 2, 1, 3, so b2 becomes its parent.
    upper2 = upper.clone()
    upper2[0, 2] = 1.0
    upper2[2, 2] = 1.0
    assert coactivation_parents([[lower, upper2]], [4, 3])[0].tolist() == [0, -1, 2, -1]


def test_negative_codes_do_not_count_as_firing():
    counts = CoactivationCounts(1, 2)
    counts.add(torch.tensor([[-1.0], [1.0]]), torch.tensor([[1.0, 0.0], [-2.0, 1.0]]))
    assert counts.parents().tolist() == [1]


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 30), st.integers(1, 6), st.integers(1, 5), st.integers(1, 7), st.integers(0, 10_000))
def test_chunked_counts_equal_the_brute_force_count(rows, n_lower, n_upper, chunk, seed):
    g = torch.Generator().manual_seed(seed)
    lower = torch.relu(torch.randn(rows, n_lower, generator=g))
    upper = torch.relu(torch.randn(rows, n_upper, generator=g))
    chunks = [[lower[i:i + chunk], upper[i:i + chunk]] for i in range(0, rows, chunk)]
    (parents,) = coactivation_parents(chunks, [n_lower, n_upper])
    brute = np.zeros((n_lower, n_upper), dtype=int)
    for n in range(rows):
        for i in range(n_lower):
            for k in range(n_upper):
                brute[i, k] += bool(lower[n, i] > 0 and upper[n, k] > 0)
    expected = [int(np.argmax(r)) if r.max() > 0 else -1 for r in brute]  # argmax: first on ties
    assert parents.tolist() == expected
