"""``train.nonfinite``: what a step with a NaN or infinite loss does (docs/reliability.md).

'stop' ends the run with the last checkpoint kept (the trainer checks every step's loss, and
every weight before a checkpoint is written, so no checkpoint holds a non-finite weight);
'skip' ends such a step after its forward pass, before any gradient or update.
"""

from __future__ import annotations

import torch

from hsae.recipe.schema import TrainConfig


def skips_batch(cfg: TrainConfig, loss: torch.Tensor) -> bool:
    """With ``train.nonfinite: skip``, whether ``loss`` is NaN or infinite (the step then stops)."""
    return cfg.nonfinite == "skip" and not bool(torch.isfinite(loss.detach()))


def all_finite(tensors: list[torch.Tensor]) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in tensors)
