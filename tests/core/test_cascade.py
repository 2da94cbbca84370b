"""The cascade (spec §2-3): stop-gradient modes, dynamic masking, level schedules, optimizer
groups and loss normalisation."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.cascade.cascade import Cascade

FAST = settings(max_examples=25, deadline=None)
MODES = ("none", "partial", "bilateral")
ENCODERS = {
    "relu": {"name": "relu"},
    "topk": {"name": "topk", "k": 2},
    "batchtopk": {"name": "batchtopk", "k": 2},
    "jumprelu": {"name": "jumprelu"},
    "gated": {"name": "gated"},
}
DEAD = -1e3  # a b_enc this negative keeps a ReLU latent silent on every input


def relu_levels(*widths: int, **level_options) -> list[dict]:
    return [{"n_latents": n, "encoder": {"name": "relu"}, **level_options} for n in widths]


def grad_or_zero(loss: torch.Tensor, param: torch.Tensor) -> torch.Tensor:
    grad = torch.autograd.grad(loss, param, retain_graph=True, allow_unused=True)[0]
    return torch.zeros_like(param) if grad is None else grad


def silence(cascade: Cascade, level: int, latents) -> None:
    with torch.no_grad():
        cascade.level(level).b_enc[latents] = DEAD


@pytest.mark.parametrize("encoder", ENCODERS)
def test_bilateral_lower_decoders_get_no_gradient_from_upper_levels(build_cascade, encoder):
    levels = [{"n_latents": n, "encoder": ENCODERS[encoder], "sparsity_coef": 0.1} for n in (16, 8, 4)]
    cascade = build_cascade(8, levels, stop_gradient="bilateral")
    out = cascade(torch.randn(32, 8), step=0)
    assert len(out.levels) == 3
    for upper in out.levels[1:]:
        for lower in range(1, upper.level):
            assert not grad_or_zero(upper.loss, cascade.level(lower).W_dec).any()
    # the levels still train themselves
    assert grad_or_zero(out.levels[2].loss, cascade.level(3).W_dec).any()


def target_path_grad(build_cascade, mode: str):
    """∂L₂/∂W¹_dec with level 2's encoder weights at zero: its code, hence â, no longer depends on
    the input atoms, so only the target a¹_i (Eq. 9) can carry gradient to W¹_dec."""
    cascade = build_cascade(6, relu_levels(10, 4, normalisation="sum"), stop_gradient=mode)
    with torch.no_grad():
        cascade.level(2).W_enc.zero_()
        cascade.level(2).b_enc.fill_(0.5)
    out = cascade(torch.randn(24, 6), step=0)
    return cascade, out, grad_or_zero(out.levels[1].loss, cascade.level(1).W_dec)


def sparsity_path_grad(build_cascade, mode: str) -> torch.Tensor:
    """The part of ∂L₂/∂W¹_dec due to λ_s² S₂: the gradient at λ_s² = 1 minus the one at λ_s² = 0
    for the same parameters and batch."""
    x = torch.randn(24, 6)
    grads = []
    for coef in (1.0, 0.0):
        torch.manual_seed(1)
        cascade = build_cascade(6, relu_levels(10, 4, sparsity_coef=coef), stop_gradient=mode)
        out = cascade(x, step=0)
        grads.append(grad_or_zero(out.levels[1].loss, cascade.level(1).W_dec))
    return grads[0] - grads[1]


@pytest.mark.parametrize("mode", MODES)
def test_stop_gradient_modes_split_reconstruction_and_sparsity_paths(build_cascade, mode):
    cascade, out, target_grad = target_path_grad(build_cascade, mode)
    sparsity_grad = sparsity_path_grad(build_cascade, mode)
    if mode == "none":
        # ∂/∂a_i of (1/|A|) Σ ||a_i − â||² with â constant is 2(a_i − â)/|A|, column by column
        active = (out.levels[0].z.max(0).values > 0).nonzero().squeeze(1)
        atoms = cascade.level(1).W_dec[:, active]
        x_hat = cascade.level(2).decode(out.levels[1].z).t()
        expected = torch.zeros_like(target_grad)
        expected[:, active] = 2 * (atoms - x_hat) / len(active)
        assert torch.allclose(target_grad, expected, atol=1e-6)
        assert target_grad.abs().max() > 1e-3
    else:
        assert not target_grad.any()
    if mode == "bilateral":
        assert not sparsity_grad.any()
    else:
        assert sparsity_grad.abs().max() > 1e-4


@settings(max_examples=25, deadline=None)
@given(dead=st.lists(st.booleans(), min_size=12, max_size=12), mode=st.sampled_from(["none", "partial"]),
       seed=st.integers(0, 10_000))
def test_atoms_outside_the_active_set_get_no_gradient(build_cascade, dead, mode, seed):
    torch.manual_seed(seed)
    cascade = build_cascade(6, relu_levels(12, 4, sparsity_coef=0.1), stop_gradient=mode)
    silence(cascade, 1, torch.tensor(dead))
    out = cascade(torch.randn(16, 6), step=0)
    fired = out.levels[0].z.max(0).values > 0
    assert not (fired & torch.tensor(dead)).any()
    if not fired.any():
        assert len(out.levels) == 1
        return
    assert out.levels[1].n_inputs == int(fired.sum())
    grad = grad_or_zero(out.levels[1].loss, cascade.level(1).W_dec)
    assert not grad[:, ~fired].any()
    if int(fired.sum()) >= 2:  # one atom alone is its own b_dec (its geometric median): no gradient
        assert grad[:, fired].any()


@FAST
@given(eps=st.sampled_from([0.0, 0.05, 0.3]), dead1=st.lists(st.booleans(), min_size=10, max_size=10),
       dead2=st.lists(st.booleans(), min_size=6, max_size=6), seed=st.integers(0, 10_000))
def test_each_level_sees_exactly_the_atoms_that_fired_below(build_cascade, eps, dead1, dead2, seed):
    """A² = {j : max_x z¹_j(x) > ε}, A³ = {k : max_{i∈A²} u²_k(a¹_i) > ε} (Eq. 26-27)."""
    torch.manual_seed(seed)
    cascade = build_cascade(6, relu_levels(10, 6, 3), mask_threshold=eps)
    silence(cascade, 1, torch.tensor(dead1))
    silence(cascade, 2, torch.tensor(dead2))
    out = cascade(torch.randn(16, 6), step=0)
    for below, above in zip(out.levels, out.levels[1:]):
        active = (below.z.max(0).values > eps).nonzero().squeeze(1)
        atoms = cascade.level(below.level).W_dec[:, active].t()
        assert above.n_inputs == below.n_active == len(active)
        assert torch.equal(above.z, cascade.level(above.level).encode(atoms).z)
    last = out.levels[-1]
    assert len(out.levels) == 3 or not (last.z.max(0).values > eps).any()


def test_empty_active_set_skips_its_level_and_all_above(build_cascade):
    x = torch.randn(16, 6)
    cascade = build_cascade(6, relu_levels(8, 4, 2))
    silence(cascade, 1, slice(None))
    out = cascade(x, step=0)
    assert [o.level for o in out.levels] == [1]
    assert out.levels[0].n_active == 0
    assert torch.equal(out.loss, out.levels[0].loss)

    cascade = build_cascade(6, relu_levels(8, 4, 2))
    silence(cascade, 2, slice(None))
    out = cascade(x, step=0)
    assert [o.level for o in out.levels] == [1, 2]
    assert torch.allclose(out.loss, out.levels[0].loss + out.levels[1].weight * out.levels[1].loss)
    assert grad_or_zero(out.loss, cascade.level(3).W_dec).abs().sum() == 0


@FAST
@given(lam=st.floats(0.1, 5.0), start=st.integers(0, 50), warmup=st.integers(0, 20))
def test_start_step_and_linear_warmup(build_cascade, lam, start, warmup):
    cascade = build_cascade(4, [{"n_latents": 4, "encoder": {"name": "relu"}},
                                {"n_latents": 2, "encoder": {"name": "relu"}, "lambda": lam,
                                 "start_step": start, "lambda_warmup": warmup}])
    weights = [cascade.level_weight(2, step) for step in range(start + warmup + 10)]
    assert all(w == 0 for w in weights[:start])
    ramp = weights[start:start + warmup]
    assert all(abs(b - a - lam / warmup) < 1e-9 for a, b in zip(ramp, ramp[1:]))
    assert all(0 < w <= lam for w in ramp)
    assert all(abs(w - lam) < 1e-9 for w in weights[start + max(warmup - 1, 0):])
    assert cascade.level_weight(1, 0) == 1.0
    assert cascade.level_weight(2, None) == lam


def test_levels_before_their_start_step_are_off_in_the_loss(build_cascade):
    cascade = build_cascade(6, [{"n_latents": 8, "encoder": {"name": "relu"}},
                                {"n_latents": 4, "encoder": {"name": "relu"}, "start_step": 10, "lambda_warmup": 4,
                                 "lambda": 2.0}])
    x = torch.randn(16, 6)
    before = cascade(x, step=9)
    assert [o.level for o in before.levels] == [1]
    assert grad_or_zero(before.loss, cascade.level(2).W_dec).abs().sum() == 0
    during = cascade(x, step=11)
    assert during.levels[1].weight == pytest.approx(1.0)
    assert torch.allclose(during.loss, during.levels[0].loss + 1.0 * during.levels[1].loss)


def test_per_level_learning_rates_reach_the_optimizer(build_cascade):
    cascade = build_cascade(6, [{"n_latents": 8, "encoder": {"name": "jumprelu"}},
                                {"n_latents": 4, "encoder": {"name": "gated"}, "lr": 1e-2},
                                {"n_latents": 2, "encoder": {"name": "topk", "k": 1}, "lr": 5e-4}])
    optimizer = torch.optim.Adam(cascade.param_groups(1e-3))
    assert [group["lr"] for group in optimizer.param_groups] == [1e-3, 1e-2, 5e-4]
    for l, group in enumerate(optimizer.param_groups, start=1):
        assert {id(p) for p in group["params"]} == {id(p) for p in cascade.level(l).parameters()}
    grouped = [id(p) for group in optimizer.param_groups for p in group["params"]]
    assert sorted(grouped) == sorted(id(p) for p in cascade.parameters())


@pytest.mark.parametrize("level", [1, 2])
@pytest.mark.parametrize("how", ["sum", "mean", "variance"])
def test_loss_normalisation_scales(build_cascade, level, how):
    d, coef = 6, 0.05
    cascade = build_cascade(d, relu_levels(10, 4, normalisation=how, sparsity_coef=coef))
    x = 3 * torch.randn(20, d) + 1
    out = cascade(x, step=0)
    target = x if level == 1 else cascade.level(1).W_dec[:, out.levels[0].z.max(0).values > 0].t()
    variance = (target - target.mean(0)).pow(2).sum(1).mean()
    scale = {"sum": 1.0, "mean": float(d), "variance": variance}[how]
    o = out.levels[level - 1]
    z = o.z
    penalty = (z * cascade.level(level).decoder_norms()).sum(1).mean()
    assert torch.allclose(o.loss, (o.reconstruction + coef * penalty) / scale)
    if how == "variance":
        assert torch.allclose(o.fvu, o.reconstruction / variance)


def test_variance_normalisation_falls_back_to_the_second_moment(build_cascade):
    cascade = build_cascade(4, relu_levels(6, b_dec_init="zeros"))
    x = torch.tensor([[1.0, 2.0, 0.0, -1.0]]).repeat(8, 1)  # no variance; ||x||² = 6
    out = cascade(x, step=0)
    assert out.levels[0].reconstruction > 0
    assert torch.allclose(out.levels[0].loss, out.levels[0].reconstruction / 6.0)


def test_lambda_sets_the_pull_on_the_level_below_not_the_level_s_own_steps(build_cascade, planted_hierarchy, train):
    """Under ``none``, λ₂ scales how far L₂ moves the level-1 atoms away from where L₁ alone (the
    ``bilateral`` run) leaves them; Adam normalises level 2's own steps, so they barely change."""
    data = planted_hierarchy(512)

    def trained(mode: str, lam: float) -> Cascade:
        torch.manual_seed(0)
        levels = [{"n_latents": 24, "encoder": {"name": "topk", "k": 2}},
                  {"n_latents": 6, "encoder": {"name": "topk", "k": 1}, "lambda": lam}]
        cascade = build_cascade(16, levels, stop_gradient=mode)
        train(cascade, data, steps=60)
        return cascade

    alone = trained("bilateral", 0.01).level(1).W_dec
    strong, weak = trained("none", 0.01), trained("none", 0.001)
    pull_strong = (strong.level(1).W_dec - alone).norm()
    pull_weak = (weak.level(1).W_dec - alone).norm()
    assert 0 < pull_weak < 0.3 * pull_strong, (float(pull_weak), float(pull_strong))
    torch.manual_seed(0)
    start = build_cascade(16, [{"n_latents": 24, "encoder": {"name": "topk", "k": 2}},
                               {"n_latents": 6, "encoder": {"name": "topk", "k": 1}}]).level(2).W_dec
    moved = (strong.level(2).W_dec - start).norm()
    assert (strong.level(2).W_dec - weak.level(2).W_dec).norm() < 0.25 * moved
