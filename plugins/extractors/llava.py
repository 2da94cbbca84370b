"""LLaVA-1.5 extractor: language layers (the paper's layer 39) or CLIP vision-tower layers."""

from __future__ import annotations

from hsae.interfaces.extraction.transformers import LANGUAGE_TEMPLATES, VISION_TOWER_TEMPLATES, TransformersExtractor
from hsae_plugins.extractors.tiny_if_missing import TinyIfMissing


class LlavaExtractor(TinyIfMissing, TransformersExtractor):
    """LLaVA-1.5 (e.g. llava-1.5-13b-hf): hook a language layer or a CLIP vision layer.

    Language layers run over the prompt with the image's 576 (here: patch-count) image
    tokens in place of ``<image>``; ``tokens`` picks image, text or all of them. CLIP layers
    give ``(n_images, 1 + patches, d)`` with the class token first. Note that the language
    model is fed from CLIP layer ``num_layers + vision_feature_layer`` (-2 by default).
    """

    tiny_family = "llava"
    layer_templates = {"vision": VISION_TOWER_TEMPLATES, "language": LANGUAGE_TEMPLATES}
    vision_layout = "per_image"
    vision_class_token = True
    model_types = ("llava",)
