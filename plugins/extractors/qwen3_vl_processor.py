"""An image-only Qwen3-VL processor that loads without torchvision.

The stock ``Qwen3VLProcessor`` declares a video processor, and transformers can only build
or type-check one when torchvision imports. For image + text nothing video-related is used,
so this subclass drops the ``video_processor`` argument: the processor then consists of the
image processor and the tokenizer only. ``Qwen3VLImageOnlyProcessor.from_pretrained`` loads
stock Qwen3-VL checkpoint directories (whose configs name ``Qwen3VLProcessor``; the ``qwen3_vl``
extractor loads it this way). :func:`register` lets ``AutoProcessor`` load directories saved
from this class, such as the tiny models of ``tiny_models``.
"""

from __future__ import annotations

from transformers import AutoProcessor, Qwen3VLConfig, Qwen3VLProcessor


class Qwen3VLImageOnlyProcessor(Qwen3VLProcessor):
    """``Qwen3VLProcessor`` without a video processor (images and text only)."""

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        super().__init__(image_processor, tokenizer, None, chat_template=chat_template, **kwargs)


def register() -> None:
    """Let ``AutoProcessor.from_pretrained`` find this class (for directories that name it)."""
    AutoProcessor.register(Qwen3VLConfig, Qwen3VLImageOnlyProcessor, exist_ok=True)
