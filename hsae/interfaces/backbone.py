"""Backbone plugins (group ``hsae.backbones``): the fixed image embeddings ``e_n`` of HMS.

HMS (spec §7, Eq. 29/41) averages a fixed backbone's embeddings of the images a unit fires
on. A backbone gives one vector per image of a store, in the store's image order (row ``n``
is the image with ``image_index == n``). Image backbones embed pixels (:meth:`Backbone.embed`);
the core finds the store's images, embeds them in batches and caches the result. A backbone
without a model (``precomputed``) gives the store's embeddings itself
(:meth:`Backbone.store_embeddings`).
"""

from __future__ import annotations

from collections.abc import Sequence
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

    def store_embeddings(self, store) -> np.ndarray | None:
        """``(store.n_images, D)`` embeddings of the images ``store`` (an ``hsae.store``
        ActivationStore) was extracted from, when the backbone has them without embedding
        images; None (the default): the core rebuilds the images from the dataset the store's
        attributes name, calls :meth:`embed` on them and caches the result."""
        return None
