"""The five first-party encoders against their defining equations (spec §5)."""

from __future__ import annotations

import math

import torch
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from hsae import registry
from hsae.errors import BadInput
from hsae.sae.sae import SAE

FAST = settings(max_examples=40, deadline=None)


def make_encoder(name: str, n_latents: int, n_inputs: int = 4, **options):
    return registry.create("hsae.encoders", {"name": name, **options}, n_inputs=n_inputs, n_latents=n_latents)


def integer_matrix(rows: int, cols: int, seed: int) -> torch.Tensor:
    """Small integers, so that ties are common."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(-3, 4, (rows, cols), generator=g).float()


def assert_keeps_largest_positives(pre: torch.Tensor, z: torch.Tensor, budget: int) -> None:
    """z keeps min(budget, #positive) entries of ``pre``, unchanged, and none it dropped is larger."""
    kept = z != 0
    assert int(kept.sum()) == min(budget, int((pre > 0).sum()))
    assert torch.equal(z[kept], pre[kept])
    dropped_positive = pre[~kept & (pre > 0)]
    if kept.any() and dropped_positive.numel():
        assert dropped_positive.max() <= pre[kept].min()


@FAST
@given(rows=st.integers(1, 6), n=st.integers(2, 12), k=st.integers(1, 11), seed=st.integers(0, 10_000))
def test_topk_keeps_at_most_k_per_row(rows, n, k, seed):
    assume(k < n)  # k >= n is refused (test_options_that_leave_no_sparsity_are_refused)
    encoder = make_encoder("topk", n, k=k)
    pre = integer_matrix(rows, n, seed)
    z = encoder.encode(pre, torch.zeros(n), torch.ones(n)).z
    assert ((z != 0).sum(1) <= k).all()
    for row in range(rows):
        assert_keeps_largest_positives(pre[row], z[row], k)


@FAST
@given(rows=st.integers(1, 6), n=st.integers(1, 12), k=st.floats(0.1, 6.0), seed=st.integers(0, 10_000))
def test_batchtopk_keeps_at_most_ceil_kB_per_batch_in_training(rows, n, k, seed):
    assume(k < n)
    encoder = make_encoder("batchtopk", n, k=k).train()
    pre = integer_matrix(rows, n, seed)
    z = encoder.encode(pre, torch.zeros(n), torch.ones(n)).z
    assert_keeps_largest_positives(pre.flatten(), z.flatten(), math.ceil(k * rows))


@FAST
@given(threshold=st.floats(0.0, 2.0), seed=st.integers(0, 10_000))
def test_batchtopk_uses_the_threshold_rule_at_inference(threshold, seed):
    encoder = make_encoder("batchtopk", 6, k=1).eval()
    encoder.threshold.fill_(threshold)
    pre = torch.randn(5, 6, generator=torch.Generator().manual_seed(seed))
    z = encoder.encode(pre, torch.zeros(6), torch.ones(6)).z
    assert torch.equal(z, pre * (pre > threshold))


def test_batchtopk_threshold_is_an_ema_of_the_smallest_kept_activation():
    encoder = make_encoder("batchtopk", 3, k=1, threshold_beta=0.5, threshold_start=1).train()
    batches = [torch.tensor([[5.0, 1.0, 0.0], [0.0, 3.0, 0.0]]),  # before the start: ignored
               torch.tensor([[4.0, 2.0, 0.0], [0.0, 0.5, 0.0]]),  # kept 4, 2 → θ = 2
               torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 6.0]])]  # kept 6, 1 → θ = 0.5·2 + 0.5·1
    for pre, expected in zip(batches, [0.0, 2.0, 1.5]):
        encoder.encode(pre, torch.zeros(3), torch.ones(3))
        assert float(encoder.threshold) == expected


@FAST
@given(seed=st.integers(0, 10_000))
def test_jumprelu_forward_is_p_times_step(seed):
    g = torch.Generator().manual_seed(seed)
    encoder = make_encoder("jumprelu", 7)
    with torch.no_grad():
        encoder.log_threshold.copy_(torch.randn(7, generator=g) - 1)
    pre, b_enc = torch.randn(5, 7, generator=g), 0.1 * torch.randn(7, generator=g)
    enc = encoder.encode(pre, b_enc, torch.ones(7))
    p, theta = pre + b_enc, encoder.log_threshold.exp()
    assert torch.equal(enc.z, p * (p > theta))
    assert torch.equal(enc.penalty, (p > theta).float().sum(1))


def jumprelu_example():
    """θ = (0.1, 0.2, 0.05), ε = 0.01: the rectangle kernel K((p − θ)/ε) is 1 where |p − θ| < 0.005,
    which holds for 0.102, 0.098 (column 0) and 0.203 (column 1); 0.057 passes θ but lies outside."""
    encoder = make_encoder("jumprelu", 3, bandwidth=0.01)
    with torch.no_grad():
        encoder.log_threshold.copy_(torch.tensor([0.1, 0.2, 0.05]).log())
    pre = torch.tensor([[0.102, 0.5, 0.3],
                        [0.098, 0.203, 0.057]], requires_grad=True)
    return encoder, pre, encoder.encode(pre, torch.zeros(3), torch.ones(3))


def test_jumprelu_gradients_are_the_rectangle_kernel_pseudo_derivatives():
    encoder, pre, enc = jumprelu_example()
    enc.z.sum().backward()
    # ∂z/∂p = H(p − θ)
    assert torch.equal(pre.grad, torch.tensor([[1.0, 1.0, 1.0], [0.0, 1.0, 1.0]]))
    # ∂Σz/∂θ_j = −(θ_j/ε)·#{in kernel}: column 0 has 2, column 1 has 1, column 2 none;
    # through θ = exp(log θ) that is multiplied by θ_j: 0.1·(−10·2), 0.2·(−20·1), 0.
    assert torch.allclose(encoder.log_threshold.grad, torch.tensor([-2.0, -4.0, 0.0]))


def test_jumprelu_l0_penalty_counts_and_trains_only_the_thresholds():
    encoder, pre, enc = jumprelu_example()
    assert torch.equal(enc.penalty, torch.tensor([3.0, 2.0]))
    enc.penalty.sum().backward()
    assert pre.grad is None or not pre.grad.any()
    # ∂ΣH/∂θ_j = −(1/ε)·#{in kernel}, times θ_j: 0.1·(−200), 0.2·(−100), 0.
    assert torch.allclose(encoder.log_threshold.grad, torch.tensor([-20.0, -20.0, 0.0]))


@FAST
@given(seed=st.integers(0, 10_000))
def test_gated_code_is_zero_where_the_gate_is_closed(seed):
    g = torch.Generator().manual_seed(seed)
    encoder = make_encoder("gated", 8)
    with torch.no_grad():
        encoder.r_mag.copy_(torch.randn(8, generator=g))
        encoder.b_mag.copy_(torch.randn(8, generator=g))
    proj, b_enc, dec_norm = torch.randn(6, 8, generator=g), torch.randn(8, generator=g), torch.rand(8, generator=g)
    enc = encoder.encode(proj, b_enc, dec_norm)
    gate = proj + b_enc
    magnitude = torch.relu(encoder.r_mag.exp() * proj + encoder.b_mag)
    assert not enc.z[gate <= 0].any()
    assert torch.equal(enc.z[gate > 0], magnitude[gate > 0])
    assert torch.allclose(enc.penalty, torch.relu(gate) @ dec_norm)


def test_gated_aux_loss_does_not_train_the_decoder():
    sae = SAE(5, 9, make_encoder("gated", 9, n_inputs=5))
    with torch.no_grad():
        sae.b_dec.normal_()
        sae.b_enc.normal_()
    x = torch.randn(12, 5)
    out = sae(x)
    aux = sae.encoder.aux_loss(out.encoding, x, out.x_hat, sae)
    assert torch.autograd.grad(aux, sae.W_dec, allow_unused=True)[0] is None
    # b_dec also enters the encoder as x − b_dec; feed the projection as a leaf to see only
    # the decoder side of the auxiliary reconstruction.
    proj = ((x - sae.b_dec) @ sae.W_enc.t()).detach().requires_grad_()
    enc = sae.encoder.encode(proj, sae.b_enc, sae.decoder_norms())
    aux = sae.encoder.aux_loss(enc, x, sae.decode(enc.z), sae)
    grad_w, grad_b, grad_proj = torch.autograd.grad(aux, [sae.W_dec, sae.b_dec, proj], allow_unused=True)
    assert grad_w is None and grad_b is None
    assert grad_proj.abs().sum() > 0


@FAST
@given(seed=st.integers(0, 10_000))
def test_relu_penalty_is_l1_weighted_by_decoder_norms(seed):
    g = torch.Generator().manual_seed(seed)
    sae = SAE(4, 6, make_encoder("relu", 6), normalize_decoder=False)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(6, generator=g) * 3 + 0.1)
        sae.b_enc.normal_(generator=g)
    x = torch.randn(10, 4, generator=g)
    out = sae(x)
    assert torch.equal(out.z, torch.relu((x - sae.b_dec) @ sae.W_enc.t() + sae.b_enc))
    assert torch.allclose(out.encoding.penalty, (out.z * sae.W_dec.norm(dim=0)).sum(1))


@pytest.mark.parametrize("name, options, n", [("topk", {"k": 8}, 8), ("topk", {"k": 9}, 8),
                                              ("topk", {"k": 2, "aux_k": 9}, 8), ("batchtopk", {"k": 8.0}, 8)])
def test_options_that_leave_no_sparsity_are_refused(name, options, n):
    """The encoder contract checks options against the level's width (Encoder.size_problems)."""
    with pytest.raises(BadInput, match="latents"):
        make_encoder(name, n, **options)
    cls = registry.load("hsae.encoders", name)
    assert cls.size_problems(cls.Config(**options), n) and not cls.size_problems(cls.Config(**options), 64)
