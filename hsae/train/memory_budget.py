"""Refusing, before anything is allocated, a model or batch that cannot fit in memory.

A size the machine cannot hold (``n_latents: 100000000``) would otherwise end in an allocation
error deep inside torch, or, where the kernel over-commits, in the process being killed halfway.
The estimate is deliberately generous (an upper bound of a step's peak, spec Eq. 1-3 per level):
per level with n latents on width d, the parameters W_enc, W_dec (n × d each) and biases, times
four (values, gradients, Adam's two moments); per step, the batch (B × d) a few times over and
each level's dense code and pre-activations (B × n) three times.
"""

from __future__ import annotations

import os

import torch

from hsae.cascade.config import CascadeConfig
from hsae.errors import BadInput

FLOAT_BYTES = 4
GIB = 1 << 30


def training_bytes(model: CascadeConfig, width: int, batch_size: int) -> int:
    """An upper estimate of the memory a training step of ``model`` on width ``width`` takes."""
    latents = [level.n_latents for level in model.levels]
    parameters = sum(n * (2 * width + 1) + width for n in latents)
    per_step = batch_size * width * (2 + 2 * len(latents)) + 3 * batch_size * sum(latents)
    return FLOAT_BYTES * (4 * parameters + per_step)


def available_bytes(device: str) -> int | None:
    """Memory an allocation on ``device`` can take now (None: unknown)."""
    kind = torch.device(device).type
    if kind == "cuda" and torch.cuda.is_available():
        return torch.cuda.mem_get_info(torch.device(device))[0]
    if kind != "cpu":
        return None
    try:
        with open("/proc/meminfo") as handle:
            fields = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in handle if line.split()[1:]}
        return fields["MemAvailable"] + fields.get("SwapFree", 0)
    except (OSError, KeyError, ValueError, IndexError):
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError, AttributeError):
            return None


def check_fits(model: CascadeConfig, width: int, batch_size: int, device: str) -> None:
    """``BadInput`` naming the recipe keys when training would need more memory than there is."""
    need, have = training_bytes(model, width, batch_size), available_bytes(device)
    if have is None or need <= have:
        return
    sizes = ", ".join(f"model.levels[{l}].n_latents = {level.n_latents}" for l, level in enumerate(model.levels))
    raise BadInput(f"training needs about {need / GIB:.1f} GiB on {device} ({sizes}; width {width}; "
                   f"train.batch_size = {batch_size}), more than the {have / GIB:.1f} GiB available; "
                   "lower n_latents or train.batch_size")
