"""Per-level health: near-duplicate decoder atoms counted in chunks."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.metrics.health import near_duplicate_pairs


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 20), copies=st.integers(0, 6), chunk=st.integers(1, 25), seed=st.integers(0, 10_000))
def test_chunked_count_equals_all_pairs(n, copies, chunk, seed):
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(8, n, generator=g)
    sources = torch.randint(n, (copies,), generator=g)
    w = torch.cat([w, 2 * w[:, sources] + 1e-3 * torch.randn(8, copies, generator=g)], dim=1)  # planted duplicates
    unit = w / w.norm(dim=0)
    cos = unit.t() @ unit
    expected = int(sum(cos[i, j] > 0.95 for i in range(w.shape[1]) for j in range(i + 1, w.shape[1])))
    assert expected >= copies
    assert near_duplicate_pairs(w, 0.95, chunk=chunk) == expected
