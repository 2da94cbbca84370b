"""One SAE (spec §1): unit-norm decoder upkeep, initialisation and the decoder bias."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae import registry
from hsae.sae.init import decoder_bias, geometric_median
from hsae.sae.sae import SAE

FAST = settings(max_examples=30, deadline=None)


def relu_sae(d: int, n: int, normalize_decoder: bool = True) -> SAE:
    encoder = registry.create("hsae.encoders", "relu", n_inputs=d, n_latents=n)
    return SAE(d, n, encoder, normalize_decoder)


@FAST
@given(d=st.integers(2, 9), n=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_renormalize_gives_unit_columns(d, n, seed):
    g = torch.Generator().manual_seed(seed)
    sae = relu_sae(d, n)
    with torch.no_grad():
        sae.W_dec.copy_(torch.randn(d, n, generator=g) * torch.rand(n, generator=g) * 5)
    direction = sae.W_dec / sae.W_dec.norm(dim=0)
    sae.renormalize_decoder()
    assert torch.allclose(sae.W_dec.norm(dim=0), torch.ones(n))
    assert torch.allclose(sae.W_dec, direction)


def test_renormalize_is_off_without_unit_norm():
    sae = relu_sae(3, 4, normalize_decoder=False)
    with torch.no_grad():
        sae.W_dec.mul_(3)
    before = sae.W_dec.detach().clone()
    sae.renormalize_decoder()
    assert torch.equal(sae.W_dec, before)


@FAST
@given(d=st.integers(2, 9), n=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_parallel_gradient_removal_leaves_the_orthogonal_part(d, n, seed):
    g = torch.Generator().manual_seed(seed)
    sae = relu_sae(d, n)
    with torch.no_grad():
        sae.W_dec.mul_(torch.rand(n, generator=g) + 0.5)  # the removal must not assume unit columns
    grad = torch.randn(d, n, generator=g)
    sae.W_dec.grad = grad.clone()
    sae.remove_parallel_grad()
    unit = sae.W_dec / sae.W_dec.norm(dim=0)
    assert torch.allclose((sae.W_dec.grad * unit).sum(0), torch.zeros(n), atol=1e-5)
    assert torch.allclose(sae.W_dec.grad, grad - unit * (grad * unit).sum(0), atol=1e-5)


@FAST
@given(d=st.integers(1, 9), n=st.integers(1, 12), seed=st.integers(0, 10_000))
def test_initialisation_is_unit_decoder_and_its_transpose(d, n, seed):
    sae = relu_sae(d, n)
    sae.reset_parameters(torch.Generator().manual_seed(seed))
    assert torch.allclose(sae.W_dec.norm(dim=0), torch.ones(n))
    assert torch.equal(sae.W_enc, sae.W_dec.t())
    assert not sae.b_enc.any() and not sae.b_dec.any()


@FAST
@given(n_outliers=st.integers(1, 6), distance=st.floats(5.0, 100.0), seed=st.integers(0, 10_000))
def test_geometric_median_beats_the_mean_with_outliers(n_outliers, distance, seed):
    g = torch.Generator().manual_seed(seed)
    centre = torch.randn(4, generator=g)
    inliers = centre + 0.1 * torch.randn(30, 4, generator=g)
    outliers = centre + distance * torch.nn.functional.normalize(torch.randn(n_outliers, 4, generator=g), dim=1)
    points = torch.cat([inliers, outliers])

    def summed_distance(y):
        return float((points.double() - y.double()).norm(dim=1).sum())

    median = geometric_median(points)
    assert summed_distance(median) < summed_distance(points.mean(0))
    assert (median - centre).norm() < (points.mean(0) - centre).norm()
    for _ in range(5):  # a minimum: no small step lowers the sum
        step = 1e-2 * torch.nn.functional.normalize(torch.randn(4, generator=g), dim=0)
        assert summed_distance(median) <= summed_distance(median + step) + 1e-6


def test_decoder_bias_methods():
    points = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [50.0, 50.0]])
    assert torch.equal(decoder_bias(points, "mean"), points.mean(0))
    assert torch.equal(decoder_bias(points, "zeros"), torch.zeros(2))
    assert torch.equal(decoder_bias(points, "geometric_median"), geometric_median(points))
    with pytest.raises(ValueError, match="'median'"):
        decoder_bias(points, "median")
    sae = relu_sae(2, 3)
    sae.init_b_dec(points, "mean")
    assert torch.equal(sae.b_dec, points.mean(0))
