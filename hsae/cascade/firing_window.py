"""[hsae] Which level-1 atoms level 2 settles on: those that fired, strongly enough, over the window
of steps since level 2 last settled (docs/cascade.md, "Settling the upper levels").

One batch is too few rows for a tree of many leaves with Zipf frequencies: its rare leaves do not
occur in it, their atoms are left out of the settle, and the families they belong to are judged on
fewer members. The window counts every row since the last settle (the ``settle_every`` steps
before the first one).
"""

from __future__ import annotations

import torch
from torch import nn

from hsae.interfaces.data_parallel import batch_sum


class FiringWindow(nn.Module):
    """Per level-1 latent, the rows it fired on and the sum of its activations there, over every
    row of the window's steps: in a data-parallel run each step's counts are summed over the
    processes, so every process holds the same window (and the first one's checkpoint resumes all)."""

    def __init__(self, n_latents: int):
        super().__init__()
        self.register_buffer("rows", torch.zeros(n_latents))
        self.register_buffer("activation", torch.zeros(n_latents))

    @staticmethod
    @torch.no_grad()
    def counts(z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(rows fired, activation sum) per latent of the codes ``z`` (rows, n), over the whole
        batch when its rows are split over processes (one reduction for both)."""
        both = batch_sum(torch.stack([(z > 0).sum(0).float(), z.detach().sum(0).float()]))
        return both[0], both[1]

    @torch.no_grad()
    def add(self, z: torch.Tensor) -> None:
        """Count the codes ``z`` (rows, n) of one step (this process's rows of it)."""
        rows, activation = self.counts(z)
        self.rows += rows
        self.activation += activation

    @torch.no_grad()
    def reset(self) -> None:
        self.rows.zero_()
        self.activation.zero_()


def strong_latents(rows: torch.Tensor, activation: torch.Tensor, share: float) -> torch.Tensor:
    """Indices of the latents that fired and whose mean activation where active is at least
    ``share`` times the median activation over all firings (the median of the latents' means
    weighted by how often each fired): spare latents that fit the residual fire weakly and
    rarely, so however many of them fired, they do not move the floor."""
    fired = rows > 0
    if not fired.any():
        return fired.nonzero().squeeze(1)
    mean = activation / rows.clamp_min(1)
    order = torch.argsort(mean[fired])
    weights = rows[fired][order].cumsum(0)
    median = mean[fired][order][torch.searchsorted(weights, weights[-1] / 2)]
    return (fired & (mean >= share * median)).nonzero().squeeze(1)
