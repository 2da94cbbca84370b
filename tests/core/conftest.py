"""Builders shared by the core tests: cascades, generated data and a plain training loop.

They are session-scoped fixtures returning functions, so hypothesis tests can use them too.
"""

from __future__ import annotations

import pytest
import torch

from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig


def _build_cascade(d: int, levels: list[dict], **cascade_options) -> Cascade:
    """A cascade on inputs of width ``d``; ``levels`` are LevelConfig dicts."""
    return Cascade(d, CascadeConfig(levels=levels, **cascade_options))


def _planted_hierarchy(n_rows: int, d: int = 16) -> torch.Tensor:
    """Rows that are sums of two leaf directions with random weights in [1, 2]; the 16 leaves are
    4 parent directions, each perturbed 4 times. The structure is the same on every call."""
    g = torch.Generator().manual_seed(0)
    parents = torch.nn.functional.normalize(torch.randn(4, d, generator=g), dim=1)
    noise = 0.5 * torch.randn(4, 4, d, generator=g)
    leaves = torch.nn.functional.normalize(parents[:, None, :] + noise, dim=2).reshape(-1, d)
    picks = torch.stack([torch.randperm(len(leaves), generator=g)[:2] for _ in range(n_rows)])
    scales = 1.0 + torch.rand(n_rows, 2, generator=g)
    return (scales[..., None] * leaves[picks]).sum(1)


def _train(cascade: Cascade, data: torch.Tensor, steps: int, batch: int = 64, lr: float = 3e-3) -> list[float]:
    """Adam on the joint loss with the cascade's hooks; returns the loss of every step."""
    optimizer = torch.optim.Adam(cascade.param_groups(lr))
    g = torch.Generator().manual_seed(1)
    losses = []
    cascade.train()
    for step in range(steps):
        rows = data[torch.randint(len(data), (batch,), generator=g)]
        out = cascade(rows, step=step)
        optimizer.zero_grad()
        out.loss.backward()
        cascade.after_backward()
        optimizer.step()
        cascade.after_step()
        losses.append(float(out.loss.detach()))
    return losses


@pytest.fixture(scope="session")
def build_cascade():
    return _build_cascade


@pytest.fixture(scope="session")
def planted_hierarchy():
    return _planted_hierarchy


@pytest.fixture(scope="session")
def train():
    return _train
