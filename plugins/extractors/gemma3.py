"""Gemma-3 extractor: SigLIP vision-tower layers (the paper's layer 26) or language layers."""

from __future__ import annotations

from hsae.interfaces.extraction.transformers import LANGUAGE_TEMPLATES, VISION_TOWER_TEMPLATES, TransformersExtractor
from hsae_plugins.extractors.tiny_if_missing import TinyIfMissing


class Gemma3Extractor(TinyIfMissing, TransformersExtractor):
    """Gemma-3 (e.g. gemma-3-4b-it): hook a vision-tower layer or a language layer.

    Vision layers give ``(n_images, patches, d)``: at 896 px a 64×64 grid of 4096 patches,
    which the projector later pools to 256 image tokens; there is no class token.
    Pan-and-scan crops are not used.
    """

    tiny_family = "gemma3"
    layer_templates = {"vision": VISION_TOWER_TEMPLATES, "language": LANGUAGE_TEMPLATES}
    vision_layout = "per_image"
    model_types = ("gemma3",)
