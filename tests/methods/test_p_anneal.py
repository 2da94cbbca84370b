"""P-annealing: the exponent schedule of the reference trainer and the penalty it drives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.methods import build_model, check_method
from hsae.methods.p_anneal import AnnealPlan, PAnnealOptions, power_penalty

LEVELS = [{"n_latents": 24, "encoder": {"name": "relu"}, "sparsity_coef": 0.5},
          {"n_latents": 6, "encoder": {"name": "relu"}, "sparsity_coef": 0.5}]


@settings(max_examples=50, deadline=None)
@given(st.floats(0.0, 0.9), st.integers(2, 12), st.floats(0.0, 0.4), st.floats(0.5, 1.0), st.integers(100, 5000))
def test_the_exponent_falls_from_one_to_its_target_in_n_updates_steps(p_end, n, start, end, steps):
    options = PAnnealOptions(p_end=p_end, n_updates=n, anneal_start=start, anneal_end=end)
    plan = AnnealPlan.from_options(options, steps)
    ps = [plan.exponent_at(s) for s in range(steps)]
    assert ps[0] == 1.0 and ps[int(start * steps)] == 1.0  # nothing changes up to the first update
    assert ps[-1] == pytest.approx(p_end)  # the last step uses the target
    assert all(a >= b for a, b in zip(ps, ps[1:]))
    assert np.allclose(plan.exponents, np.linspace(1.0, p_end, n))
    assert plan.update_steps[-1] <= int(end * steps)
    changes = [s for s in range(1, steps) if ps[s] != ps[s - 1]]
    assert changes == [u + 1 for u in plan.update_steps[1:]]  # p_i applies from u_i + 1 on


def test_an_anneal_window_shorter_than_its_updates_is_refused(model_section):
    with pytest.raises(ValueError, match="do not fit"):
        check_method(model_section({"name": "p_anneal", "n_updates": 10, "anneal_start": 0.0,
                                    "anneal_end": 0.5}, LEVELS), 12)


def test_the_penalty_is_the_relu_penalty_at_p_one_and_counts_at_p_zero():
    z = torch.tensor([[0.0, 2.0, 0.5], [1.0, 0.0, 0.0]])
    norms = torch.tensor([1.0, 2.0, 1.0])
    assert torch.allclose(power_penalty(z * norms, 1.0), z @ norms)
    assert torch.equal(power_penalty(z * norms, 0.0), torch.tensor([2.0, 1.0]))
    w = (z * norms).requires_grad_()
    power_penalty(w, 0.5).sum().backward()
    assert torch.isfinite(w.grad).all()


def test_training_follows_the_plan_and_keeps_the_penalty_continuous(model_section, planted_rows):
    steps = 40
    options = {"name": "p_anneal", "p_end": 0.2, "n_updates": 4, "anneal_start": 0.25, "anneal_end": 0.75,
               "queue_length": 3}
    model = build_model(16, model_section(options, LEVELS), steps)
    plan = AnnealPlan.from_options(PAnnealOptions(**{k: v for k, v in options.items() if k != "name"}), steps)
    encoder = model.sae(1).encoder
    data = planted_rows(200)
    optimizer = torch.optim.Adam(model.param_groups(1e-3))
    model.train()
    for step in range(steps):
        assert float(encoder.p) == pytest.approx(plan.exponent_at(step))
        alpha_before = float(encoder.alpha)
        out = model(data[(step * 16) % 200:][:16], step)
        if step in plan.update_steps[1:]:
            # over the last 3 batches (this one included), α_new · mean S_{p_new} = α_old · mean S_{p_old}
            old, new = encoder.queue[: min(int(encoder.queued), 3)].mean(0)
            assert float(encoder.alpha) * float(new) == pytest.approx(alpha_before * float(old), rel=1e-9)
            assert float(encoder.alpha) != alpha_before
        elif step > plan.update_steps[0]:
            assert float(encoder.alpha) == alpha_before
        optimizer.zero_grad()
        out.loss.backward()
        optimizer.step()
    assert float(encoder.p) == pytest.approx(0.2) and int(encoder.updates_done) == 4
