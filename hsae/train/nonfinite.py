"""``train.nonfinite``: what a step with a NaN or infinite loss does (docs/reliability.md).

'stop' ends the run with the last checkpoint kept (the trainer checks every step's loss, and
every weight before a checkpoint is written, so no checkpoint holds a non-finite weight);
'skip' ends such a step after its forward pass, before any gradient or update.
"""

from __future__ import annotations

import torch

from hsae.interfaces.data_parallel import batch_max
from hsae.recipe.schema import TrainConfig


def loss_finite(loss: torch.Tensor) -> bool:
    """Whether ``loss`` is finite; in a data-parallel run, on every process (one answer for all,
    so that all skip or stop together)."""
    return not bool(batch_max(torch.logical_not(torch.isfinite(loss.detach())).reshape(1)))


def skips_batch(cfg: TrainConfig, loss: torch.Tensor) -> bool:
    """With ``train.nonfinite: skip``, whether ``loss`` is NaN or infinite (the step then stops)."""
    return cfg.nonfinite == "skip" and not loss_finite(loss)


def all_finite(tensors: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)
