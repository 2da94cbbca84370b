"""The fast path (hsae.sae.sparse) against the dense reference: same codes, losses and gradients,
on random inputs with ties (small integers) and repeated (row, latent) entries."""

from __future__ import annotations

from unittest import mock

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae import registry
from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig
from hsae.sae import sparse
from hsae.sae.sae import SAE
from hsae.interfaces.sparse import SparseCode, Support
from hsae.sae.sparse import BatchProjection
from hsae_plugins.encoders.topk import keep_topk

FAST = settings(max_examples=30, deadline=None)


def assert_close(a: torch.Tensor, b: torch.Tensor) -> None:
    """Equal up to float32 rounding, relative to the larger entries (sums in another order)."""
    assert a.shape == b.shape
    assert (a - b).abs().max() <= 1e-5 * b.abs().max() + 1e-7 if b.numel() else True


def random_code(rows: int, n: int, entries: int, seed: int, duplicates: bool) -> SparseCode:
    """A code with ``entries`` entries grouped by row; with ``duplicates`` pairs may repeat."""
    g = torch.Generator().manual_seed(seed)
    row = torch.randint(rows, (entries,), generator=g).sort().values
    latents = torch.randint(n, (entries,), generator=g) if duplicates else None
    if not duplicates:  # distinct pairs: sample positions without replacement
        flat = torch.randperm(rows * n, generator=g)[:entries].sort().values
        row, latents = flat // n, flat % n
    values = torch.randn(entries, generator=g, dtype=torch.float64).requires_grad_()
    return SparseCode(Support.from_rows(row, latents, rows, n, unique=not duplicates), values)


def grads(loss: torch.Tensor, *tensors: torch.Tensor) -> list[torch.Tensor]:
    return [torch.zeros_like(t) if g is None else g
            for t, g in zip(tensors, torch.autograd.grad(loss, tensors, allow_unused=True))]


@FAST
@given(rows=st.integers(1, 6), n=st.integers(1, 10), d=st.integers(1, 5), entries=st.integers(0, 30),
       duplicates=st.booleans(), seed=st.integers(0, 10_000))
def test_sparse_decode_is_the_dense_product(rows, n, d, entries, duplicates, seed):
    if not duplicates:
        entries = min(entries, rows * n)
    code = random_code(rows, n, entries, seed, duplicates)
    g = torch.Generator().manual_seed(seed + 1)
    W_dec = torch.randn(d, n, generator=g, dtype=torch.float64).requires_grad_()
    b_dec = torch.randn(d, generator=g, dtype=torch.float64).requires_grad_()
    weights = torch.randn(rows, d, generator=g, dtype=torch.float64)
    fast = sparse.decode(code, W_dec, b_dec)
    dense = code.to_dense() @ W_dec.t() + b_dec
    assert torch.allclose(fast, dense)
    for a, b in zip(grads((fast * weights).sum(), code.values, W_dec, b_dec),
                    grads((dense * weights).sum(), code.values, W_dec, b_dec)):
        assert torch.allclose(a, b)


@FAST
@given(rows=st.integers(1, 6), n=st.integers(1, 10), d=st.integers(1, 5), entries=st.integers(0, 30),
       duplicates=st.booleans(), seed=st.integers(0, 10_000))
def test_pre_activations_at_a_support_have_the_dense_gradients(rows, n, d, entries, duplicates, seed):
    if not duplicates:
        entries = min(entries, rows * n)
    support = random_code(rows, n, entries, seed, duplicates).support
    g = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(rows, d, generator=g, dtype=torch.float64).requires_grad_()
    b_dec = torch.randn(d, generator=g, dtype=torch.float64).requires_grad_()
    W_enc = torch.randn(n, d, generator=g, dtype=torch.float64).requires_grad_()
    b_enc = torch.randn(n, generator=g, dtype=torch.float64).requires_grad_()
    weights = torch.randn(entries, generator=g, dtype=torch.float64)
    dense = ((x - b_dec) @ W_enc.t() + b_enc)[support.rows, support.latents]
    fast = BatchProjection(x - b_dec, W_enc, b_enc).at(support, dense.detach())
    assert torch.equal(fast, dense)
    for a, b in zip(grads((fast * weights).sum(), x, b_dec, W_enc, b_enc),
                    grads((dense * weights).sum(), x, b_dec, W_enc, b_enc)):
        assert torch.allclose(a, b)


@FAST
@given(rows=st.integers(1, 6), n=st.integers(1, 10), entries=st.integers(0, 30), seed=st.integers(0, 10_000),
       threshold=st.sampled_from([0.0, 0.5]))
def test_code_statistics_match_the_dense_matrix_with_repeated_entries(rows, n, entries, seed, threshold):
    code = random_code(rows, n, entries, seed, duplicates=True)
    with torch.no_grad():  # entries that cancel: a repeated pair summing to zero
        if entries >= 2:
            code.support.rows[1], code.support.latents[1] = code.support.rows[0], code.support.latents[0]
            code.values[1] = -code.values[0]
    z = code.to_dense()
    assert torch.equal(code.positives_per_row(), (z > 0).sum(1))
    assert torch.equal(code.firing(threshold), z.max(0).values > threshold)
    assert torch.allclose(code.column_sq_sums(), z.pow(2).sum(0))
    assert torch.allclose(grads(code.column_sq_sums().sum(), code.values)[0], grads(z.pow(2).sum(), code.values)[0])


def small_integer_sae(name: str, d: int, n: int, seed: int, **options) -> SAE:
    """An SAE with small-integer weights and biases: its pre-activations on integer inputs are
    exact and full of ties."""
    encoder = registry.create("hsae.encoders", {"name": name, **options}, n_inputs=d, n_latents=n)
    sae = SAE(d, n, encoder)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in (sae.W_enc, sae.b_enc, sae.W_dec, sae.b_dec):
            p.copy_(torch.randint(-2, 3, p.shape, generator=g))
    return sae.train()


def step_result(sae: SAE, x: torch.Tensor, fast: bool):
    """Code, loss (reconstruction + aux) and parameter gradients of one training step."""
    sae.fast_path = fast
    out = sae(x)
    assert (out.encoding.sparse is not None) == fast
    loss = (x - out.x_hat).pow(2).sum(-1).mean()
    aux = sae.encoder.aux_loss(out.encoding, x, out.x_hat, sae)
    if aux is not None:
        loss = loss + aux
    params = [p for p in sae.parameters()]
    return out.z.detach(), loss.detach(), grads(loss, *params)


def assert_paths_agree(make_sae, x: torch.Tensor) -> None:
    fast, dense = make_sae(), make_sae()
    z_fast, loss_fast, grads_fast = step_result(fast, x, fast=True)
    z_dense, loss_dense, grads_dense = step_result(dense, x, fast=False)
    assert_close(z_fast, z_dense)
    assert_close(loss_fast, loss_dense)
    for a, b in zip(grads_fast, grads_dense):
        assert_close(a, b)
    for name, buffer in fast.encoder.named_buffers():  # AuxK counters, BatchTopK threshold
        assert torch.allclose(buffer, dict(dense.encoder.named_buffers())[name], rtol=1e-5, atol=0)


ENCODERS = {
    "topk1": {"name": "topk", "k": 1},
    "topk2": {"name": "topk", "k": 2},
    "topk2-auxk": {"name": "topk", "k": 2, "aux_k": 3, "dead_after": 1},
    "batchtopk1": {"name": "batchtopk", "k": 1},
    "batchtopk1.5": {"name": "batchtopk", "k": 1.5},
}


@pytest.mark.parametrize("name", ENCODERS)
@FAST
@given(rows=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_fast_and_dense_steps_agree_with_ties(name, rows, seed):
    encoder = ENCODERS[name]
    d, n = 5, 24  # k/n ≤ 1/8: the fast path is taken
    x = torch.randint(-2, 3, (rows, d), generator=torch.Generator().manual_seed(seed + 7)).float()
    assert_paths_agree(lambda: small_integer_sae(encoder["name"], d, n, seed, **{k: v for k, v in encoder.items() if k != "name"}), x)


@pytest.mark.parametrize("scale", [0.01, 1.0])
@pytest.mark.parametrize("name", ENCODERS)
@FAST
@given(rows=st.integers(2, 40), chunk=st.integers(1, 7), seed=st.integers(0, 10_000))
def test_fast_and_dense_steps_agree_over_several_chunks(name, scale, rows, chunk, seed):
    """Random floats (no ties) of two scales, the pre-activations seen ``chunk`` rows at a time."""
    encoder = ENCODERS[name]
    d, n = 6, 32

    def make_sae():
        torch.manual_seed(seed)
        sae = SAE(d, n, registry.create("hsae.encoders", encoder, n_inputs=d, n_latents=n))
        with torch.no_grad():
            sae.b_enc.normal_(std=scale, generator=torch.Generator().manual_seed(seed))
            sae.b_dec.normal_(std=scale, generator=torch.Generator().manual_seed(seed + 1))
        return sae.train()

    x = scale * torch.randn(rows, d, generator=torch.Generator().manual_seed(seed + 2))
    with mock.patch.object(sparse, "CHUNK_BYTES", chunk * n * 4):
        assert_paths_agree(make_sae, x)


@pytest.mark.parametrize("encoder", [{"name": "relu"}, {"name": "jumprelu"}, {"name": "gated"},
                                     {"name": "topk", "k": 4}, {"name": "batchtopk", "k": 4}])
def test_the_dense_path_is_chosen_when_codes_are_not_sparse(encoder):
    """ReLU, JumpReLU and Gated have no sparse form; TopK/BatchTopK with k/n > MAX_DENSITY use
    the dense path too (here k/n = 1/4)."""
    sae = SAE(4, 16, registry.create("hsae.encoders", encoder, n_inputs=4, n_latents=16)).train()
    assert sae(torch.randn(8, 4)).encoding.sparse is None


def test_a_subclass_that_changes_encode_keeps_the_dense_path():
    topk = type(registry.create("hsae.encoders", {"name": "topk", "k": 1}, n_inputs=4, n_latents=64))

    class Doubled(topk):
        def encode(self, proj, b_enc, dec_norm):
            enc = super().encode(proj, b_enc, dec_norm)
            return type(enc)(2 * enc.z, enc.penalty)

    plain = SAE(4, 64, topk(topk.Config(k=1), n_inputs=4, n_latents=64)).train()
    sae = SAE(4, 64, Doubled(topk.Config(k=1), n_inputs=4, n_latents=64)).train()
    x = torch.randn(8, 4)
    assert plain(x).encoding.sparse is not None
    assert sae(x).encoding.sparse is None
    assert torch.equal(sae.encode(x).z, 2 * keep_topk((x - sae.b_dec) @ sae.W_enc.t() + sae.b_enc, 1))


def test_batchtopk_at_inference_uses_the_dense_threshold_rule():
    sae = SAE(4, 64, registry.create("hsae.encoders", {"name": "batchtopk", "k": 1}, n_inputs=4, n_latents=64))
    assert sae.train()(torch.randn(8, 4)).encoding.sparse is not None
    assert sae.eval()(torch.randn(8, 4)).encoding.sparse is None


def cascade_result(levels: list[dict], x: torch.Tensor, fast: bool, seed: int, **options):
    torch.manual_seed(seed)
    cascade = Cascade(x.shape[1], CascadeConfig(levels=levels, **options))
    for sae in cascade.levels.values():
        sae.fast_path = fast
    out = cascade(x, step=0)
    params = list(cascade.parameters())
    return out, grads(out.loss, *params)


@FAST
@given(mode=st.sampled_from(["none", "partial", "bilateral"]), usage=st.sampled_from([0.0, 0.5]),
       seed=st.integers(0, 10_000))
def test_cascade_fast_and_dense_agree(mode, usage, seed):
    levels = [{"n_latents": 64, "encoder": {"name": "topk", "k": 2}},
              {"n_latents": 16, "encoder": {"name": "topk", "k": 1}, "lambda": 0.5, "usage_coef": usage},
              {"n_latents": 8, "encoder": {"name": "batchtopk", "k": 1}, "lambda": 0.5}]
    x = torch.randn(32, 8, generator=torch.Generator().manual_seed(seed))
    fast, fast_grads = cascade_result(levels, x, True, seed, stop_gradient=mode)
    dense, dense_grads = cascade_result(levels, x, False, seed, stop_gradient=mode)
    assert_close(fast.loss, dense.loss)
    for a, b in zip(fast.levels, dense.levels):
        assert (a.n_inputs, a.n_active) == (b.n_inputs, b.n_active)
        assert torch.equal(a.l0, b.l0) and torch.equal(a.z, b.z)
    for a, b in zip(fast_grads, dense_grads):
        assert_close(a, b)
