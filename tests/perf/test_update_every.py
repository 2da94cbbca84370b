"""``update_every``: level l ≥ 2 is computed on every m-th step only, and only with the levels
below it; the steps it is left out it gets no gradient."""

from __future__ import annotations

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig


@settings(max_examples=30, deadline=None)
@given(every2=st.integers(1, 4), every3=st.integers(1, 4), step=st.integers(0, 24))
def test_levels_run_when_they_and_the_levels_below_are_due(every2, every3, step):
    levels = [{"n_latents": 32, "encoder": {"name": "topk", "k": 2}},
              {"n_latents": 8, "encoder": {"name": "topk", "k": 1}, "update_every": every2},
              {"n_latents": 4, "encoder": {"name": "topk", "k": 1}, "update_every": every3}]
    cascade = Cascade(6, CascadeConfig(levels=levels))
    out = cascade(torch.randn(16, 6), step=step)
    expected = 1 + (step % every2 == 0) + (step % every2 == 0 and step % every3 == 0)
    assert len(out.levels) == expected
    out.loss.backward()
    for l in range(1, 4):
        assert (cascade.level(l).W_enc.grad is not None) == (l <= expected)
    assert len(cascade(torch.randn(16, 6)).levels) == 3  # no step (evaluation): every level
