"""The lean training step (hsae.train.lean_step) against the plain one, and its memory.

Same parameters and Adam state after several steps (flat TopK, BatchTopK, TopK with AuxK, a
2-level cascade in each stop-gradient mode; with and without clipping, clipping active; float16
loss scaling, an overflowing scale included); factored gradients sum to the plain gradients and
are recorded only inside ``factored_gradients``; the lean step's peak of live tensors stays under
1.3 × (parameters + Adam state + batch)."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.profiler import ProfilerActivity, profile

from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig
from hsae.recipe.schema import TrainConfig
from hsae.sae.factored import LatentBags, factored_gradients
from hsae.train import lean_step
from hsae.train.lean_step import lean_train_step
from hsae.train.trainer import train_step

D, N, ROWS = 16, 256, 64
TOPK = {"n_latents": N, "encoder": {"name": "topk", "k": 4}}
LEVEL_2 = {"n_latents": 64, "encoder": {"name": "topk", "k": 1}, "lambda": 0.5}
MODELS = {
    "topk": {"levels": [TOPK]},
    "batchtopk": {"levels": [{"n_latents": N, "encoder": {"name": "batchtopk", "k": 4}}]},
    "topk-auxk": {"levels": [{"n_latents": N, "encoder": {"name": "topk", "k": 4, "aux_k": 8, "dead_after": ROWS}}]},
    "cascade-none": {"levels": [TOPK, LEVEL_2], "stop_gradient": "none"},
    "cascade-partial": {"levels": [TOPK, LEVEL_2], "stop_gradient": "partial"},
    "cascade-bilateral": {"levels": [TOPK, LEVEL_2], "stop_gradient": "bilateral"},
}


class Run:
    """A model, its Adam and its loss scaler, started from perturbed initial weights (so that no
    gradient is pure rounding noise, which Adam's first steps would amplify)."""

    def __init__(self, model: dict, seed: int = 0, scale: float | None = None):
        torch.manual_seed(seed)
        self.model = Cascade(D, CascadeConfig(**model))
        self.model.reset_parameters(torch.Generator().manual_seed(seed))
        self.model.train()
        g = torch.Generator().manual_seed(seed + 1)
        with torch.no_grad():
            for p in self.model.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g))
        self.optimizer = torch.optim.Adam(self.model.param_groups(1e-2))
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.scaler = None if scale is None else torch.amp.GradScaler("cpu", init_scale=scale)

    def step(self, step_fn, x: torch.Tensor, step: int, cfg: TrainConfig) -> None:
        step_fn(self.model, self.optimizer, x, step, cfg, self.params, self.scaler)


def batches(count: int, seed: int = 2) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [3 * torch.randn(ROWS, D, generator=g) + 1 for _ in range(count)]


def assert_close(a: torch.Tensor, b: torch.Tensor, what: str) -> None:
    """Equal up to float32 rounding, relative to the larger entries."""
    assert a.shape == b.shape and a.dtype == b.dtype and a.stride() == b.stride(), what
    assert (a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-9, what


def assert_same_state(lean: Run, plain: Run) -> None:
    for (name, p), q in zip(plain.model.named_parameters(), lean.model.parameters()):
        assert_close(q.detach(), p.detach(), name)
    for p, q in zip(plain.params, lean.params):
        expected, got = plain.optimizer.state[p], lean.optimizer.state[q]
        assert expected.keys() == got.keys()
        for key in expected:
            assert_close(got[key], expected[key], key)


def train_both(model: dict, cfg: TrainConfig, steps: int = 4, scale: float | None = None) -> tuple[Run, Run]:
    lean, plain = Run(model, scale=scale), Run(model, scale=scale)
    for step, x in enumerate(batches(steps)):
        plain.step(train_step, x, step, cfg)
        lean.step(lean_train_step, x, step, cfg)
    return lean, plain


@pytest.mark.parametrize("clip", [None, 1.0])
@pytest.mark.parametrize("name", MODELS)
def test_lean_and_plain_steps_give_the_same_parameters_and_adam_state(name, clip):
    lean, plain = train_both(MODELS[name], TrainConfig(lr=1e-2, grad_clip=clip))
    assert_same_state(lean, plain)


def gradient_norm(run: Run, x: torch.Tensor) -> float:
    out = run.model(x, 0)
    out.loss.backward()
    run.model.after_backward()
    norm = float(torch.nn.utils.get_total_norm([p.grad for p in run.params if p.grad is not None]))
    run.optimizer.zero_grad(set_to_none=True)
    return norm


@pytest.mark.parametrize("name", ["topk", "cascade-none"])
def test_active_clipping_is_the_same(name):
    clip = 1e-3
    assert gradient_norm(Run(MODELS[name]), batches(1)[0]) > 10 * clip  # the coefficient is well below 1
    lean, plain = train_both(MODELS[name], TrainConfig(lr=1e-2, grad_clip=clip))
    assert_same_state(lean, plain)


def test_loss_scaling_is_the_same():
    lean, plain = train_both(MODELS["cascade-none"], TrainConfig(lr=1e-2, grad_clip=1.0), scale=2.0**10)
    assert_same_state(lean, plain)
    assert lean.scaler.get_scale() == plain.scaler.get_scale()


def test_an_overflowing_loss_scale_skips_the_step_and_backs_off_as_the_plain_step():
    model = {"levels": [{**TOPK, "normalisation": "sum"}]}  # a loss of ~150: times 2^127 is inf
    lean, plain = train_both(model, TrainConfig(lr=1e-2, grad_clip=1.0), steps=1, scale=2.0**127)
    assert torch.equal(lean.model.level(1).W_enc, Run(model).model.level(1).W_enc)  # no update
    assert not lean.optimizer.state and not plain.optimizer.state
    assert lean.scaler.get_scale() == plain.scaler.get_scale() == 2.0**126
    assert_same_state(lean, plain)


def factored_and_plain(model: dict, x: torch.Tensor, block: int):
    """Per parameter: the plain backward's gradient and the one formed from the factors
    (``block`` latents at a time) plus the dense ``.grad`` left beside them."""
    plain, lean = Run(model), Run(model)
    plain.model(x, 0).loss.backward()
    with factored_gradients() as factors:
        lean.model(x, 0).loss.backward()
    pairs = []
    for (name, p), q in zip(plain.model.named_parameters(), lean.model.parameters()):
        formed = torch.zeros_like(q) if q.grad is None else q.grad.clone()
        gradient = factors.get(q)
        if gradient is not None:
            for rows, g in gradient.blocks(block):
                gradient.latent_rows(formed)[rows] += g
        pairs.append((name, p.grad, formed, gradient is not None))
    return pairs


@settings(max_examples=10, deadline=None)
@given(name=st.sampled_from(["topk", "topk-auxk", "cascade-none", "cascade-bilateral"]),
       block=st.integers(1, 300), seed=st.integers(0, 1000))
def test_factored_gradients_sum_to_the_plain_gradients(name, block, seed):
    x = batches(2, seed)[1]
    pairs = factored_and_plain(MODELS[name], x, block)
    for param, plain, formed, _ in pairs:
        assert_close(formed, plain, param)
    factored = {param for param, _, _, was_factored in pairs if was_factored}
    assert {"levels.1.W_enc", "levels.1.W_dec"} <= factored
    assert not any(param.split(".")[-1].startswith("b_") for param in factored)


@settings(max_examples=40, deadline=None)
@given(n_rows=st.integers(1, 9), n_latents=st.integers(1, 7), entries=st.integers(0, 40),
       shifted=st.booleans(), block=st.integers(1, 8), seed=st.integers(0, 10_000))
def test_latent_bags_are_the_weighted_sum_of_their_rows(n_rows, n_latents, entries, shifted, block, seed):
    """Repeated (row, latent) pairs included; entries grouped by row as the sparse path has them."""
    g = torch.Generator().manual_seed(seed)
    rows = torch.randint(n_rows, (entries,), generator=g).sort().values
    latents = torch.randint(n_latents, (entries,), generator=g)
    weights = torch.randn(entries, generator=g, dtype=torch.float64)
    source = torch.randn(n_rows, 3, generator=g, dtype=torch.float64)
    shift = torch.randn(3, generator=g, dtype=torch.float64) if shifted else None
    expected = torch.zeros(n_latents, 3, dtype=torch.float64).index_add_(
        0, latents, weights[:, None] * (source if shift is None else source - shift)[rows])
    bags = LatentBags(rows, latents, weights, n_latents, source, shift)
    assert torch.allclose(bags.dense(), expected)
    formed = torch.cat([bags.rows_of(start, min(start + block, n_latents)) for start in range(0, n_latents, block)])
    assert torch.allclose(formed, expected)


def test_plain_backward_fills_grad_outside_the_context():
    run, x = Run(MODELS["topk"]), batches(1)[0]
    with factored_gradients() as factors:
        out = run.model(x, 0)  # the mark is taken in the forward …
    out.loss.backward()  # … so this backward, outside the block, still records
    assert len(factors) == 2 and run.model.level(1).W_enc.grad is None
    run.optimizer.zero_grad(set_to_none=True)
    run.model(x, 0).loss.backward()  # a forward outside the block: ordinary gradients
    assert all(p.grad is not None for p in run.model.parameters())


def test_the_lean_step_needs_a_plain_adam():
    run = Run(MODELS["topk"])
    sgd = torch.optim.SGD(run.model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="Adam"):
        lean_train_step(run.model, sgd, batches(1)[0], 0, TrainConfig(), run.params)


def live_tensor_peak(run) -> int:
    """Largest growth of live CPU tensor memory (bytes) while ``run()`` runs, from the torch
    profiler's memory events: each op's own allocations less its own frees, and the frees seen
    outside any op, added up in time order."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def test_the_lean_step_peak_memory_is_within_1_3_of_the_state():
    """d = 256, n = 2048, TopK 16, batch 1024: the proportions of d = 1024, n = 8192, batch 4096."""
    d, n, rows = 256, 2048, 1024
    model = Cascade(d, CascadeConfig(levels=[{"n_latents": n, "encoder": {"name": "topk", "k": 16}}]))
    model.reset_parameters(torch.Generator().manual_seed(0))
    model.train()
    cfg = TrainConfig(lr=1e-4, grad_clip=1.0)
    optimizer = torch.optim.Adam(model.param_groups(cfg.lr))
    params = [p for group in optimizer.param_groups for p in group["params"]]
    x = torch.randn(rows, d, generator=torch.Generator().manual_seed(1))
    for step in range(2):  # b_dec set, Adam state made
        lean_train_step(model, optimizer, x, step, cfg, params)
    optimizer.zero_grad(set_to_none=True)
    tensors = list(model.parameters()) + [t for s in optimizer.state.values() for t in s.values()] + [x]
    state = sum(t.numel() * t.element_size() for t in tensors)
    peak = live_tensor_peak(lambda: lean_train_step(model, optimizer, x, 2, cfg, params))
    assert (state + peak) / state <= 1.3
    assert math.ceil(n / lean_step.LATENT_BLOCKS) < n  # the gradient is formed in several blocks


def test_auto_memory_takes_the_lean_step_on_a_cpu_for_large_weights():
    large, small = [torch.empty(lean_step.LEAN_FROM_ENTRIES, device="meta")], [torch.empty(64, 64, device="meta")]
    assert lean_step.takes_lean_step(TrainConfig(), large)
    assert not lean_step.takes_lean_step(TrainConfig(), small)
    assert not lean_step.takes_lean_step(TrainConfig(device="cuda"), large)
    assert lean_step.takes_lean_step(TrainConfig(memory="lean", device="cuda"), small)
    assert not lean_step.takes_lean_step(TrainConfig(memory="fast"), large)
