"""Capture one module's output during a forward pass, and optionally stop the pass there.

The hook is registered with ``prepend=True`` so that it runs before any hook transformers
installs itself (those record ``output_hidden_states``; see the notes on LLaVA's hook order).
Stopping raises a private exception from the hook, which :func:`capture_output` catches:
the layers after the hooked one never run, which saves their time when only this module's
output is needed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from hsae.errors import HsaeError


class _StopForward(Exception):
    """Raised by the capture hook to end the forward pass after the hooked module."""


def output_tensor(output: Any) -> torch.Tensor:
    """The hidden-state tensor of a module output: a Tensor, a tuple's first element, or a
    ModelOutput's (mapping's) first tensor value."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, Mapping):
        values = [v for v in output.values() if isinstance(v, torch.Tensor)]
    elif isinstance(output, (tuple, list)):
        values = [v for v in output if isinstance(v, torch.Tensor)]
    else:
        values = []
    if not values:
        raise HsaeError(f"the hooked module returned {type(output).__name__}, which holds no tensor")
    return values[0]


def capture_output(module: nn.Module, forward: Callable[[], Any], *, stop: bool = True) -> torch.Tensor:
    """Run ``forward()`` and return ``module``'s output tensor from its first call.

    With ``stop`` the pass ends right after that call. Raises HsaeError if the module never ran.
    """
    captured: list[torch.Tensor] = []

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> None:
        if not captured:
            captured.append(output_tensor(output).detach())
        if stop:
            raise _StopForward

    handle = module.register_forward_hook(hook, prepend=True)
    try:
        forward()
    except _StopForward:
        pass
    finally:
        handle.remove()
    if not captured:
        raise HsaeError("the hooked module did not run during the forward pass; is it part of the model's forward path?")
    return captured[0]
