"""Generic extractor: any transformers model, any module given by its dotted path."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import transformers
from pydantic import Field

from hsae.errors import BadInput
from hsae.interfaces.extraction.layout import Layout, infer_layout
from hsae.interfaces.extractor import ExtractorConfig
from hsae.interfaces.extraction.transformers import LANGUAGE_TEMPLATES, VISION_TOWER_TEMPLATES, TransformersExtractor


class HFModuleConfig(ExtractorConfig):
    model_class: str = Field(
        "auto",
        description="transformers class whose from_pretrained loads the model; 'auto': "
        "AutoModelForImageTextToText, falling back to AutoModel (vision-only models)",
    )
    layout: Literal["auto", "sequence", "per_image", "flattened"] = Field(
        "auto", description="how the hooked output maps to images (see docs/extraction.md); 'auto' guesses from shapes"
    )
    class_token: bool = Field(False, description="the hooked output's first row per image is a class token")


class HFModuleExtractor(TransformersExtractor):
    """Any transformers model: hook the module at ``layer`` (a dotted path) and split its output per image.

    With a processor that has a chat template the prompt is used as for the family
    extractors; with a bare image processor (vision-only models) images go in alone and
    every output row is an image token.
    """

    Config = HFModuleConfig
    layer_templates = {
        "vision": ("model.visual.blocks.{i}", *VISION_TOWER_TEMPLATES, "encoder.layers.{i}", "vision_model.encoder.layers.{i}"),
        "language": LANGUAGE_TEMPLATES,
    }

    def _load_model(self, dtype):
        name = self.config.model_class
        if name != "auto":
            cls = getattr(transformers, name, None)
            if cls is None or not hasattr(cls, "from_pretrained"):
                raise BadInput(f"hf_module: model_class {name!r} is not a transformers class with from_pretrained")
            return cls.from_pretrained(self.config.model, dtype=dtype)
        try:
            return transformers.AutoModelForImageTextToText.from_pretrained(self.config.model, dtype=dtype)
        except ValueError:  # a config that is not an image-text-to-text model
            return transformers.AutoModel.from_pretrained(self.config.model, dtype=dtype)

    def _takes_prompt(self) -> bool:
        return getattr(self._processor, "chat_template", None) is not None

    def _check_processor(self, processor) -> None:
        if not (hasattr(processor, "image_processor") or hasattr(processor, "preprocess")):
            raise BadInput(
                f"AutoProcessor.from_pretrained({self.config.model!r}) returned {type(processor).__name__}, "
                "which cannot process images; the directory needs an image processor config"
            )
        if hasattr(processor, "tokenizer") and getattr(processor, "chat_template", None) is None:
            raise BadInput(
                f"the processor of {self.config.model!r} has a tokenizer but no chat template, so there is no way "
                "to place the image in the prompt; add chat_template.jinja to the model directory"
            )

    def _inputs(self, images: Sequence[Any]):
        if self._takes_prompt():
            return super()._inputs(images)
        batch = self._processor(images=list(images), return_tensors="pt")
        return batch.to(device=self._device, dtype=self._model.dtype)

    def _layout(self, hidden, inputs, n_images: int) -> Layout:
        if self.config.layout != "auto":
            return self.config.layout
        return infer_layout(hidden, inputs, n_images)

    @property
    def has_class_token(self) -> bool:
        return self.config.class_token
