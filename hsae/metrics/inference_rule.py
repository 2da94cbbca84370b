"""The two evaluation rules of HMS for encoders with a learned inference threshold (spec §7).

``threshold`` (hsae's default): level-1 codes and parents π_l come from the encoders' inference
rule (BatchTopK: ``p · 1[p > θ]``); a level-1 unit is alive when its pooled activation is > 0
on some image.

``authors`` (the rules of the authors' HMS script, ``eval_hms.py``):

- level-1 codes: an encoder with a batch rule (BatchTopK) keeps its batch budget ``⌈k·B⌉``
  over each chunk of evaluation rows it is given (:func:`batch_inference`);
- alive level-1 units: those among a row's ``ALIVE_TOP`` largest ReLU pre-activations above
  ``FLOOR`` on some evaluation row (:func:`alive_by_pre_activation`);
- parents: ``π_l(i) = argmax_k ReLU(p^l_k(a^{l−1}_i))`` when that maximum exceeds ``FLOOR``,
  no parent otherwise (:func:`parents_by_pre_activation`), where ``p^l = W^l_enc (a − b^l_dec)
  + b^l_enc`` is level l's pre-activation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch

from hsae.cascade.hierarchy import NO_PARENT
from hsae.interfaces.encoder import Encoder
from hsae.sae.sae import SAE

Rule = Literal["threshold", "authors"]
FLOOR = 1e-3
ALIVE_TOP = 12


@contextmanager
def batch_inference(model: torch.nn.Module, on: bool = True) -> Iterator[None]:
    """Within the block, every encoder of ``model`` with a batch rule applies it in eval mode."""
    encoders = [m for m in model.modules() if isinstance(m, Encoder)]
    before = [e.batch_inference for e in encoders]
    for encoder in encoders:
        encoder.batch_inference = on
    try:
        yield
    finally:
        for encoder, was in zip(encoders, before):
            encoder.batch_inference = was


def pre_activations(sae: SAE, x: torch.Tensor) -> torch.Tensor:
    """``p = W_enc (x − b_dec) + b_enc`` (Eq. 1 before σ), rows of ``x``."""
    return (x - sae.b_dec) @ sae.W_enc.t() + sae.b_enc


@torch.no_grad()
def alive_by_pre_activation(sae: SAE, rows: Callable[[], Iterable[torch.Tensor]]) -> torch.Tensor:
    """(n,) bool: units among some row's ``ALIVE_TOP`` largest ReLU pre-activations above ``FLOOR``."""
    alive = torch.zeros(sae.n_latents, dtype=torch.bool)
    for x in rows():
        top, index = torch.relu(pre_activations(sae, x)).topk(min(ALIVE_TOP, sae.n_latents), dim=1)
        alive[index[top > FLOOR].unique().cpu()] = True
    return alive


@torch.no_grad()
def parents_by_pre_activation(cascade) -> list[np.ndarray]:
    """[π_2, …, π_L] of a cascade by the plain ReLU of each level's pre-activations above ``FLOOR``."""
    parents = []
    for l in range(2, cascade.depth + 1):
        strength, index = torch.relu(pre_activations(cascade.level(l), cascade.atoms(l - 1))).max(dim=1)
        parents.append(torch.where(strength > FLOOR, index, NO_PARENT).cpu().numpy().astype(np.int64))
    return parents
