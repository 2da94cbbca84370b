"""The SAE a trained model writes back into the extractor's module, and where its atoms sit.

A cascade's (and a flat, stacked or clustering baseline's) level 1 is an SAE of its own. A
Matryoshka model's levels are blocks of one dictionary: the whole dictionary is what
reconstructs the activations, and its level-1 atoms are one block of its latents.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from hsae.errors import BadInput
from hsae.sae.sae import SAE


@dataclass(frozen=True)
class ModelSAE:
    """``sae`` reconstructs the activations; level-1 atom ``j`` is its latent ``offset + j``."""

    sae: SAE
    offset: int
    n_atoms: int


def model_sae(model: nn.Module) -> ModelSAE:
    """The written-back SAE of a trained run's model (``RunDir.load_model``)."""
    level = model.level(1)
    if isinstance(level, SAE):
        return ModelSAE(level, 0, level.n_latents)
    owner = getattr(level, "owner", None)
    dictionary = getattr(owner, "dictionary", None)
    if isinstance(dictionary, SAE) and hasattr(owner, "block"):
        return ModelSAE(dictionary, owner.block(1).start, level.n_latents)
    raise BadInput(f"a {type(model).__name__} model has no SAE that reconstructs the activations, "
                   "so it cannot be written back into a model")
