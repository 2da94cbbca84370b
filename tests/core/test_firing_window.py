"""Which level-1 atoms level 2 settles on (hsae.cascade.firing_window): those that fired strongly
enough over the window since its last settle, not only on the settle's batch."""

from __future__ import annotations

import torch

from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig
from hsae.cascade.firing_window import FiringWindow, strong_latents

SILENT = -1e3


def test_rarely_firing_weak_spares_do_not_move_the_floor():
    """10 common atoms (mean 1.0), 1 rare atom (3 rows, mean 1.1) and 200 spares that fired twice
    each at 0.1: more spares than atoms, but far fewer firings, so the floor stays near 0.5."""
    rows = torch.tensor([100.0] * 10 + [3.0] + [2.0] * 200)
    mean = torch.tensor([1.0] * 10 + [1.1] + [0.1] * 200)
    assert strong_latents(rows, rows * mean, 0.5).tolist() == list(range(11))
    # half the median over latents (one batch's rule) would let every spare in
    assert int((mean >= 0.5 * torch.median(mean)).sum()) == 211


def test_no_firing_no_latent():
    assert strong_latents(torch.zeros(4), torch.zeros(4), 0.5).numel() == 0


def window_cascade() -> Cascade:
    levels = [{"n_latents": 6, "encoder": {"name": "relu"}},
              {"n_latents": 3, "encoder": {"name": "topk", "k": 1}, "start_step": 20, "settle_every": 10}]
    cascade = Cascade(4, CascadeConfig(levels=levels)).train()
    with torch.no_grad():
        cascade.level(1).b_enc.fill_(SILENT)  # nothing fires on the settle's batch
    return cascade


def test_atoms_that_fired_earlier_in_the_window_are_live():
    cascade = window_cascade()
    batch = torch.randn(8, 4)
    assert cascade.live_atoms(1, batch).numel() == 0
    firings = torch.zeros(5, 6)
    firings[:, 1] = 1.0
    firings[:2, 4] = 0.9
    cascade.window.add(firings)
    assert cascade.live_atoms(1, batch).tolist() == [1, 4]
    cascade.window.reset()
    assert cascade.live_atoms(1, batch).numel() == 0


def test_the_window_opens_one_settle_interval_before_the_first_settle_and_restarts_at_each():
    cascade = window_cascade()
    assert [s for s in range(25) if cascade.window_open(s)] == list(range(10, 25))
    assert not cascade.eval().window_open(15)
    cascade.train()
    with torch.no_grad():
        cascade.level(1).b_enc.zero_()
    x = torch.randn(16, 4).abs()
    for step in range(10, 20):
        cascade(x, step)
    assert cascade.window.rows.sum() > 0
    cascade(x, 20)  # the first settle: the window restarts with this step's firings
    fired_now = (cascade.level(1).encode(x).z > 0).sum(0).float()
    torch.testing.assert_close(cascade.window.rows, fired_now)


def test_a_cascade_without_settling_keeps_no_window():
    cascade = Cascade(4, CascadeConfig(levels=[{"n_latents": 6, "encoder": {"name": "relu"}},
                                               {"n_latents": 3, "encoder": {"name": "topk", "k": 1}}]))
    assert cascade.window is None and not cascade.window_open(100)
    assert isinstance(window_cascade().window, FiringWindow)
