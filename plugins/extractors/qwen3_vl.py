"""Qwen3-VL extractor: vision blocks (the paper's ``visual.blocks.23``) or language layers."""

from __future__ import annotations

from hsae.interfaces.extraction.transformers import LANGUAGE_TEMPLATES, TransformersExtractor
from hsae_plugins.extractors.tiny_if_missing import TinyIfMissing
from hsae_plugins.extractors.qwen3_vl_processor import Qwen3VLImageOnlyProcessor


class Qwen3VLExtractor(TinyIfMissing, TransformersExtractor):
    """Qwen3-VL (e.g. Qwen3-VL-4B-Instruct): hook a vision block or a language layer.

    Vision blocks see the patches of all images of a batch concatenated, ``(Σ P_i, d)``,
    before the 2×2 merger (so 4 rows per language-model image token), in merge-window order;
    they are split per image with ``image_grid_thw``. The processor is the image-only
    shim, so torchvision is not needed.
    """

    tiny_family = "qwen3_vl"
    layer_templates = {
        "vision": ("model.visual.blocks.{i}", "visual.blocks.{i}"),
        "language": LANGUAGE_TEMPLATES,
    }
    vision_layout = "flattened"
    model_types = ("qwen3_vl", "qwen3_vl_moe")

    def _load_processor(self):
        # Directly, not through AutoProcessor: real checkpoints name the stock Qwen3VLProcessor,
        # which AutoProcessor would build (and fail on without torchvision).
        return Qwen3VLImageOnlyProcessor.from_pretrained(self.config.model)
