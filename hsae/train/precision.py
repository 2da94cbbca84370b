"""The forward pass's precision (``train.precision``), shared by the training steps."""

from __future__ import annotations

import contextlib

import torch

from hsae.recipe.schema import TrainConfig
from hsae.train.device import device_type


def autocast(cfg: TrainConfig):
    """The forward pass's mixed precision (``train.precision``); parameters, optimizer state,
    thresholds and EMAs stay float32."""
    if cfg.precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type(cfg), dtype=getattr(torch, cfg.precision))
