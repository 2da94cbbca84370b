"""End to end: a 3-level cascade trains on a planted hierarchy with every first-party encoder."""

from __future__ import annotations

import math

import pytest

ENCODERS = {
    "relu": ({"name": "relu"}, 1e-3),
    "topk": ({"name": "topk", "k": 2}, 0.0),
    "batchtopk": ({"name": "batchtopk", "k": 2}, 0.0),
    "jumprelu": ({"name": "jumprelu", "initial_threshold": 0.05, "bandwidth": 0.05}, 1e-3),
    "gated": ({"name": "gated"}, 1e-3),
}


@pytest.mark.parametrize("name", ENCODERS)
def test_three_level_cascade_loss_falls(build_cascade, planted_hierarchy, train, name):
    encoder, sparsity = ENCODERS[name]
    levels = [{"n_latents": n, "encoder": encoder, "sparsity_coef": sparsity} for n in (32, 8, 4)]
    cascade = build_cascade(16, levels)
    data = planted_hierarchy(1024)
    losses = train(cascade, data, steps=150)
    assert all(math.isfinite(v) for v in losses)
    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    assert last < 0.6 * first, (first, last)
    out = cascade(data, step=150)
    assert [o.level for o in out.levels] == [1, 2, 3]
    assert float(out.levels[0].fvu) < 0.6  # level 1 explains the data, not only the levels above it
