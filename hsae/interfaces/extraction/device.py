"""Pick the torch device and weights dtype from a plugin's ``device`` / ``dtype`` options."""

from __future__ import annotations

import torch

from hsae.errors import BadInput

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(name: str) -> torch.device:
    """'auto' → cuda if available, else mps if available, else cpu; otherwise ``torch.device(name)``."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, ValueError) as exc:
        raise BadInput(f"device {name!r} is not a torch device: {exc}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise BadInput(f"device {name!r} asked for, but torch sees no CUDA GPU here; use device: auto or cpu")
    return device


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    """'auto' → bfloat16 on a GPU that supports it, float16 on another GPU, float32 on the CPU."""
    if name != "auto":
        return _DTYPES[name]
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "mps":
        return torch.float16
    return torch.float32
