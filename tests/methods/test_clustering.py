"""HAC and spectral clustering of the level-1 atoms: n₂ groups, and planted groups found."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.metrics import adjusted_rand_score

from hsae.methods import build_model

LEVELS = [{"n_latents": 24, "encoder": {"name": "topk", "k": 2}},
          {"n_latents": 6, "encoder": {"name": "topk", "k": 1}},
          {"n_latents": 2, "encoder": {"name": "topk", "k": 1}}]


def _with_atoms(model, atoms: torch.Tensor):
    with torch.no_grad():
        model.sae(1).W_dec.copy_(atoms.t())
    return model


def _planted_atoms(seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """24 unit atoms: 6 groups of 4 around random centres (cosine ≈ 0.95 within a group)."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.nn.functional.normalize(torch.randn(6, 32, generator=g), dim=1)
    atoms = centres.repeat_interleave(4, 0) + 0.2 * torch.randn(24, 32, generator=g) / 32 ** 0.5
    return torch.nn.functional.normalize(atoms, dim=1), np.repeat(np.arange(6), 4)


@pytest.mark.parametrize("method", ["hac", "spectral"])
def test_atoms_fall_into_n2_groups(method, model_section):
    model = build_model(32, model_section(method, LEVELS[:2]), 10)
    pi2, = model.parents()
    assert pi2.shape == (24,) and set(pi2.tolist()) == set(range(6))
    figures = model.level_figures()
    assert figures["2"]["dead"] == 0.0 and figures["2"]["fvu"] is None


@pytest.mark.parametrize("method", ["hac", "spectral"])
def test_planted_groups_of_atoms_are_found_and_nested_above(method, model_section):
    atoms, groups = _planted_atoms()
    model = _with_atoms(build_model(32, model_section(method, LEVELS), 10), atoms)
    pi2, pi3 = model.parents()
    assert adjusted_rand_score(groups, pi2) == 1.0
    assert pi3.shape == (6,) and set(pi3.tolist()) == {0, 1}
    centres = model.decoder(2)
    assert centres.shape == (32, 6)
    for k in range(6):  # a group's representative is the unit mean of its atoms
        mean = torch.nn.functional.normalize(atoms[torch.as_tensor(pi2 == k)].mean(0), dim=0)
        assert torch.allclose(centres[:, k], mean, atol=1e-5)


def test_the_clusters_follow_the_trained_dictionary(model_section):
    atoms, groups = _planted_atoms()
    model = _with_atoms(build_model(32, model_section("hac", LEVELS[:2]), 10), atoms)
    first, = model.parents()
    shuffled = torch.randperm(24, generator=torch.Generator().manual_seed(1))
    _with_atoms(model, atoms[shuffled])
    second, = model.parents()
    assert adjusted_rand_score(groups[shuffled.numpy()], second) == 1.0
    assert adjusted_rand_score(first, second) < 1.0
