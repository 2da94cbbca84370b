"""Hooks that write an SAE's (edited) code back into a model (spec §8).

On the target module's output ``h`` (any shape ``(…, d)``: Qwen3-VL's vision blocks give
``(Σ patches, d)`` with no batch dimension, language layers ``(B, T, d)``; a tensor, a tuple or
a ModelOutput) the hook encodes every row in the SAE's units, ``x = s·h`` with ``s`` the
store's activation scale, edits the code ``z → z'`` and writes back, in the model's units:

    reconstruction     h' = (W_dec z' + b_dec) / s        (the paper's hook)
    error_preserving   h' = h + W_dec (z' − z) / s         (keeps the SAE's error term)
    zero               h' = 0                              (zero ablation, for spliced evaluation)

The code is the SAE's own encoder (``code: encoder``) or, as in the authors' steering hook, the
dense ReLU code ``relu(W_enc (x − b_dec) + b_enc)`` with no top-k (``code: relu``). The hook is
registered with ``prepend=True`` (before the hooks transformers records hidden states with) and
removed when the ``with`` block ends, by an exception too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from hsae.errors import HsaeError
from hsae.interfaces.extraction.hooks import output_tensor
from hsae.sae.sae import SAE

WriteBack = Literal["reconstruction", "error_preserving", "zero"]
CodeKind = Literal["encoder", "relu"]
Edit = Callable[[torch.Tensor], torch.Tensor]
"""z (rows, n) → z' (rows, n); must not modify its argument."""


@dataclass(frozen=True)
class Splice:
    """What the hook does: which SAE, in which units, which code, which edit, how written back.

    ``edit`` None leaves the code as it is (the plain splice)."""

    sae: SAE
    scale: float
    write_back: WriteBack = "reconstruction"
    code: CodeKind = "encoder"
    edit: Edit | None = None


def dense_relu_code(sae: SAE, x: torch.Tensor) -> torch.Tensor:
    """relu(W_enc (x − b_dec) + b_enc): the authors' steering code (every latent, no top-k)."""
    return torch.relu((x - sae.b_dec) @ sae.W_enc.t() + sae.b_enc)


def code_of(sae: SAE, x: torch.Tensor, kind: CodeKind) -> torch.Tensor:
    """The code z (rows, n) of the rows ``x`` (already in the SAE's units)."""
    return dense_relu_code(sae, x) if kind == "relu" else sae.encode(x).z


@torch.no_grad()
def rewrite(h: torch.Tensor, splice: Splice) -> torch.Tensor:
    """The written-back tensor for a module output ``h`` (…, d), in ``h``'s dtype and shape."""
    if splice.write_back == "zero":
        return torch.zeros_like(h)
    sae = splice.sae
    if h.shape[-1] != sae.n_inputs:
        raise HsaeError(f"the hooked module gives rows of width {h.shape[-1]}, the SAE expects {sae.n_inputs}; "
                        "is the extractor's layer the one the SAE was trained on?")
    rows = h.reshape(-1, h.shape[-1])
    x = rows.to(sae.W_dec.dtype) * splice.scale
    z = code_of(sae, x, splice.code)
    edited = z if splice.edit is None else splice.edit(z)
    if splice.write_back == "reconstruction":
        out = (sae.decode(edited) / splice.scale).to(h.dtype)
    else:
        changed = (edited != z).any(0).nonzero().flatten()
        if changed.numel() == 0:
            return h
        delta = (edited[:, changed] - z[:, changed]) @ sae.W_dec[:, changed].t()
        out = rows + (delta / splice.scale).to(h.dtype)
    return out.reshape(h.shape)


def replace_output(output: Any, tensor: torch.Tensor) -> Any:
    """``output`` with its hidden-state tensor (what ``output_tensor`` reads: a Tensor, a
    tuple's or a ModelOutput's first tensor) replaced by ``tensor``."""
    if isinstance(output, torch.Tensor):
        return tensor
    if isinstance(output, (tuple, list)):
        items = list(output)
        first = next((i for i, v in enumerate(items) if isinstance(v, torch.Tensor)), None)
        if first is None:
            raise HsaeError(f"the hooked module returned a {type(output).__name__} that holds no tensor")
        items[first] = tensor
        return type(output)(items) if isinstance(output, list) else tuple(items)
    if isinstance(output, Mapping):
        key = next((k for k, v in output.items() if isinstance(v, torch.Tensor)), None)
        if key is None:
            raise HsaeError(f"the hooked module returned a {type(output).__name__} that holds no tensor")
        output[key] = tensor
        return output
    raise HsaeError(f"the hooked module returned {type(output).__name__}, which holds no tensor")


@contextmanager
def spliced(module: nn.Module, splice: Splice | None) -> Iterator[list[int]]:
    """Within the block, every call of ``module`` has its output rewritten by ``splice`` (None:
    no hook). Yields a one-item list counting the calls rewritten."""
    calls = [0]
    if splice is None:
        yield calls
        return

    def hook(_module: nn.Module, _inputs: Any, output: Any) -> Any:
        calls[0] += 1
        return replace_output(output, rewrite(output_tensor(output), splice))

    handle = module.register_forward_hook(hook, prepend=True)
    try:
        yield calls
    finally:
        handle.remove()
