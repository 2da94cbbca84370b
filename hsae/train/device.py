"""The device of training: ``train.device`` resolved on this machine ('auto': CUDA when torch sees
a GPU, else MPS, else the CPU), for the trainer and for any code handed a ``TrainConfig``."""

from __future__ import annotations

import torch

from hsae.interfaces.extraction.device import resolve_device
from hsae.recipe.schema import TrainConfig


def train_device(cfg: TrainConfig) -> torch.device:
    """``cfg.device`` as a torch device; a CUDA device on a machine without one is bad input."""
    return resolve_device(cfg.device)


def device_type(cfg: TrainConfig) -> str:
    """The type ('cpu', 'cuda', …) of the device ``cfg.device`` names, 'auto' resolved on this
    machine; a named device is not checked for presence (the trainer does that)."""
    return train_device(cfg).type if cfg.device == "auto" else torch.device(cfg.device).type
