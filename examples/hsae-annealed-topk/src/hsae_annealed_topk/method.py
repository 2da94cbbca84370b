"""Cosine parents: independent SAEs per level (the ``flat`` method), each atom's parent chosen by
the geometry of the dictionaries instead of by co-activation.

For a level-(l−1) atom w_j (a decoder column, unit norm) and the level-l atoms u_k:

    π_l(j) = argmax_k cos(w_j, u_k)   when that cosine is at least ``min_cosine``, else −1 (no parent)

Training is the flat method's, unchanged: this plugin asks hsae for a ``flat`` model through the
``parts`` it is given and replaces only the parent rule.
"""

from __future__ import annotations

import numpy as np
import torch
from pydantic import Field
from torch import nn

from hsae.interfaces.method import Method
from hsae.interfaces.plugin import PluginConfig


class CosineParentsConfig(PluginConfig):
    min_cosine: float = Field(0.0, ge=-1, le=1, description="an atom whose best cosine is below this has no parent")


def cosine_parents(lower: torch.Tensor, upper: torch.Tensor, min_cosine: float) -> np.ndarray:
    """π(j) = argmax_k cos(lower[:, j], upper[:, k]), −1 where that cosine < ``min_cosine``."""
    cos = nn.functional.normalize(lower, dim=0).t() @ nn.functional.normalize(upper, dim=0)
    best, parent = cos.max(dim=1)
    return torch.where(best >= min_cosine, parent, -1).cpu().numpy()


class CosineParentsModel(nn.Module):
    """A flat model whose ``parents`` are chosen by decoder cosine; all else is the flat model's."""

    def __init__(self, flat: nn.Module, min_cosine: float):
        super().__init__()
        self.flat = flat
        self.min_cosine = min_cosine

    def forward(self, x: torch.Tensor, step: int | None = None):
        return self.flat(x, step)

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)  # parameters, buffers and submodules
        except AttributeError:
            if name == "flat":
                raise
            return getattr(self.flat, name)  # the rest of the method contract

    @torch.no_grad()
    def parents(self, rows, rule: str = "threshold") -> list[np.ndarray]:
        """[π_2, …, π_L]; neither the evaluation rows nor the inference rule matter here."""
        return [cosine_parents(self.flat.decoder(l - 1), self.flat.decoder(l), self.min_cosine)
                for l in range(2, self.flat.depth + 1)]


class CosineParents(Method):
    """Flat SAEs per level; each atom's parent is the next level's atom of largest decoder cosine."""

    Config = CosineParentsConfig
    contract = 1  # the version of the hsae.methods contract this class was written for

    def check(self, model, steps: int) -> None:
        if len(model.levels) < 2:
            raise ValueError("cosine_parents builds a hierarchy: give at least two levels")

    def build(self, n_inputs: int, model, steps: int, parts) -> nn.Module:
        return CosineParentsModel(parts.method("flat", n_inputs, model, steps), self.config.min_cosine)
