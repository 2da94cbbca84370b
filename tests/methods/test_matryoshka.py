"""Matryoshka baseline: nested prefixes each reconstruct; level L's block comes first."""

from __future__ import annotations

import pytest
import torch

from hsae.cascade.hierarchy import evaluating
from hsae.methods import build_model, check_method

LEVELS = [{"n_latents": 28, "encoder": {"name": "batchtopk", "k": 3}},
          {"n_latents": 4, "encoder": {"name": "batchtopk", "k": 1}}]


def _prefix_fvu(model, x: torch.Tensor, end: int) -> float:
    with torch.no_grad(), evaluating(model):
        sae = model.dictionary
        z = sae.encode(x).z
        recon = z[:, :end] @ sae.W_dec[:, :end].t() + sae.b_dec
    return float((x - recon).pow(2).sum() / (x - x.mean(0)).pow(2).sum())


def test_the_first_prefix_alone_reconstructs(model_section, planted_rows, fit):
    data = planted_rows(3000)
    nested = build_model(16, model_section("matryoshka", LEVELS), 200)
    plain = build_model(16, model_section({"name": "matryoshka", "group_sizes": [32]}, LEVELS), 200)
    for model in (nested, plain):
        model.reset_parameters(torch.Generator().manual_seed(0))
        fit(model, data, 200, batch=128)
    # The same dictionary trained on the full reconstruction only leaves its first 4 latents
    # useless alone; the nested loss makes them a coarse reconstruction of their own.
    assert _prefix_fvu(nested, data, 4) < 0.7
    assert _prefix_fvu(plain, data, 4) > _prefix_fvu(nested, data, 4) + 0.2
    assert _prefix_fvu(nested, data, 32) < 0.3


def test_level_blocks_top_level_first_and_codes_split_by_level(model_section):
    model = build_model(8, model_section("matryoshka", LEVELS), 10)
    assert (model.block(2), model.block(1)) == (slice(0, 4), slice(4, 32))
    x = torch.randn(5, 8)
    with evaluating(model):
        z = model.dictionary.encode(x).z
        level1, level2 = model.row_codes(x)
        assert torch.equal(level2, z[:, :4]) and torch.equal(level1, z[:, 4:])
        assert torch.equal(model.level(1).W_dec, model.dictionary.W_dec[:, 4:])
        assert torch.allclose(model.level(1)(x).x_hat, model.dictionary(x).x_hat)


def test_the_loss_is_the_weighted_sum_of_the_prefix_errors(model_section):
    levels = [{**LEVELS[0], "normalisation": "sum"}, LEVELS[1]]
    model = build_model(8, model_section({"name": "matryoshka", "group_sizes": [4, 10, 18],
                                          "group_weights": [0.5, 0.3, 0.2]}, levels), 10)
    x = torch.randn(16, 8)
    out = model(x, 0)  # training mode: the first batch also sets b_dec
    sae = model.dictionary
    z = sae.encode(x).z
    expected = sum(w * (x - (z[:, :e] @ sae.W_dec[:, :e].t() + sae.b_dec)).pow(2).sum(-1).mean()
                   for w, e in zip([0.5, 0.3, 0.2], [4, 14, 32]))
    assert torch.allclose(out.loss, expected)


def test_group_sizes_must_cover_the_dictionary(model_section):
    with pytest.raises(ValueError, match="sum to the dictionary's 32"):
        check_method(model_section({"name": "matryoshka", "group_sizes": [4, 20]}, LEVELS), 10)
    with pytest.raises(ValueError, match="one weight per group"):
        check_method(model_section({"name": "matryoshka", "group_weights": [1.0]}, LEVELS), 10)
