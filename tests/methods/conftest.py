"""Builders for the baseline tests: a model section, planted rows and a plain training loop."""

from __future__ import annotations

import pytest
import torch

from hsae.recipe.schema import ModelConfig


def _model(method, levels: list[dict], **extra) -> ModelConfig:
    return ModelConfig(method=method, levels=levels, **extra)


def _planted_rows(n_rows: int, d: int = 16, seed: int = 0) -> torch.Tensor:
    """Sums of two of 16 leaf directions (4 parents × 4 perturbed children) with weights in [1, 2]."""
    g = torch.Generator().manual_seed(seed)
    parents = torch.nn.functional.normalize(torch.randn(4, d, generator=g), dim=1)
    leaves = torch.nn.functional.normalize(parents[:, None, :] + 0.5 * torch.randn(4, 4, d, generator=g), dim=2)
    leaves = leaves.reshape(-1, d)
    picks = torch.stack([torch.randperm(len(leaves), generator=g)[:2] for _ in range(n_rows)])
    return ((1.0 + torch.rand(n_rows, 2, generator=g))[..., None] * leaves[picks]).sum(1)


def _fit(model, data: torch.Tensor, steps: int, batch: int = 64, lr: float = 3e-3, seed: int = 1) -> None:
    """Adam with the trainer's hooks (no clipping), fixed batches."""
    optimizer = torch.optim.Adam(model.param_groups(lr))
    g = torch.Generator().manual_seed(seed)
    model.train()
    for step in range(steps):
        out = model(data[torch.randint(len(data), (batch,), generator=g)], step)
        optimizer.zero_grad()
        out.loss.backward()
        model.after_backward()
        optimizer.step()
        model.after_step()


@pytest.fixture(scope="session")
def model_section():
    return _model


@pytest.fixture(scope="session")
def planted_rows():
    return _planted_rows


@pytest.fixture(scope="session")
def fit():
    return _fit
