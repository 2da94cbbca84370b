"""Backbone plugins (group ``hsae.backbones``): the fixed image embeddings ``e_n`` of HMS.

HMS (spec §7, Eq. 29/41) averages a fixed backbone's embeddings of the images a unit fires
on. A backbone gives one vector per image of a store, in the store's image order (row ``n``
is the image with ``image_index == n``). Image backbones embed pixels (:meth:`Backbone.embed`);
the base class finds the store's images, embeds them in batches and caches the result
(``hsae.extract.embeddings``). A backbone without a model (``precomputed``) overrides
:meth:`Backbone.store_embeddings` instead.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hsae.interfaces.plugin import Plugin


class Backbone(Plugin):
    """Base of backbone plugins: one embedding per image, for HMS."""

    batch_size: int = 32

    def embed(self, images: Sequence[Any]) -> torch.Tensor:
        """``(len(images), D)`` float32 embeddings of PIL RGB images."""
        raise NotImplementedError

    def store_embeddings(self, store, recipe: Any = None, run_root: Path | None = None) -> np.ndarray:
        """``(store.n_images, D)`` embeddings of the images ``store`` was extracted from.

        The images are rebuilt from the dataset the store's attributes name; the result is
        cached beside the store (or in ``run_root`` when the store's folder is read-only).
        ``recipe`` is accepted for the pipeline's call and not needed.
        """
        from hsae.extract.embeddings import cached_store_embeddings

        return cached_store_embeddings(self, store, run_root)
