"""benchmarks.float_order's drift of a level: plain relative difference of the decoders, except
that a settled level's concepts (which it numbers in no particular order) are matched first."""

from __future__ import annotations

import pytest
import torch

from benchmarks.float_order import level_drift


def decoders(n_alive: int | None = None) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    weights = {"levels.1.W_dec": torch.nn.functional.normalize(torch.randn(16, 12), dim=0)}
    if n_alive is not None:
        weights["concepts.1.alive"] = torch.arange(12) < n_alive
    return weights


def test_a_settled_level_is_compared_after_matching_its_concepts():
    reference = decoders(n_alive=8)
    permuted = dict(reference)
    order = torch.tensor([3, 0, 7, 1, 6, 2, 5, 4])
    w = reference["levels.1.W_dec"].clone()
    w[:, :8] = w[:, order]
    w[:, 8:] = torch.randn(16, 4)  # pruned latents: not compared
    permuted["levels.1.W_dec"] = w
    assert level_drift(reference, permuted, 1) == pytest.approx(0.0, abs=1e-6)
    nudged = dict(permuted, **{"levels.1.W_dec": w + 0.01 * torch.randn_like(w)})
    assert 0 < level_drift(reference, nudged, 1) < 0.05


def test_an_unsettled_level_is_compared_latent_by_latent():
    reference = decoders()
    w = reference["levels.1.W_dec"]
    swapped = {"levels.1.W_dec": w[:, torch.tensor([1, 0, *range(2, 12)])]}
    expected = float((swapped["levels.1.W_dec"] - w).norm() / w.norm())
    assert level_drift(reference, swapped, 1) == pytest.approx(expected) and expected > 0.1
