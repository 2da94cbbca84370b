"""Stacked and flat baselines: what each level reads, and that flat SAEs are independent."""

from __future__ import annotations

import torch

from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig
from hsae.cascade.hierarchy import evaluating
from hsae.methods import build_model

LEVELS = [{"n_latents": 24, "encoder": {"name": "topk", "k": 3}},
          {"n_latents": 6, "encoder": {"name": "topk", "k": 1}},
          {"n_latents": 3, "encoder": {"name": "topk", "k": 1}}]


def test_a_stacked_level_reads_the_codes_of_the_level_below(model_section):
    model = build_model(16, model_section("stacked", LEVELS), 10)
    assert [model.sae(l).n_inputs for l in (1, 2, 3)] == [16, 24, 6]
    assert model.sae(2).W_enc.shape == (6, 24) and model.sae(2).W_dec.shape == (24, 6)
    x = torch.randn(8, 16)
    with evaluating(model):
        z1, z2, z3 = model.row_codes(x)
        assert torch.equal(z2, model.sae(2).encode(model.sae(1).encode(x).z).z)
        target, recon, codes = model.reconstruction(2, x)
        assert torch.equal(target, z1) and torch.equal(codes, z2)


def test_stacked_levels_never_move_the_levels_below_and_wait_for_their_start(model_section):
    levels = [LEVELS[0], {**LEVELS[1], "start_step": 5}]
    model = build_model(16, model_section("stacked", levels), 10)
    x = torch.randn(32, 16)
    assert [lv.level for lv in model(x, step=4).levels] == [1]
    out = model(x, step=5)
    assert [lv.level for lv in out.levels] == [1, 2]
    out.levels[1].loss.backward()
    assert all(p.grad is None for p in model.saes[0].parameters())
    assert model.sae(2).W_dec.grad is not None


def test_flat_saes_train_exactly_as_each_would_alone(model_section, planted_rows, fit):
    data = planted_rows(500)
    flat = build_model(16, model_section("flat", LEVELS[:2]), 30)
    flat.reset_parameters(torch.Generator().manual_seed(0))
    alone = [Cascade(16, CascadeConfig(levels=[lv])) for lv in LEVELS[:2]]
    generator = torch.Generator().manual_seed(0)
    for cascade in alone:  # the same draws in the same order as flat's reset
        cascade.reset_parameters(generator)
    fit(flat, data, 30)
    for l, cascade in enumerate(alone, start=1):
        fit(cascade, data, 30)
        for name, value in cascade.level(1).state_dict().items():
            assert torch.allclose(flat.sae(l).state_dict()[name], value, atol=1e-6), (l, name)
