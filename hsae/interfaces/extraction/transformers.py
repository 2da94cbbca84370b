"""Shared machinery of the transformers extractors: load, prompt, hook, split per image.

A subclass names the module-path templates of its family's vision and language layers, the
layout each kind of layer produces (``hsae.interfaces.extraction.layout``), and whether vision layers
start with a class token. Everything else (``from_pretrained`` from a directory or a hub
id, the chat template, ``torch.inference_mode``, stopping the pass at the hooked layer) is
here.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import torch
from PIL import Image
from transformers import AutoModelForImageTextToText, AutoProcessor

from hsae.errors import BadInput
from hsae.interfaces.extraction.device import resolve_device, resolve_dtype
from hsae.interfaces.extraction.hooks import capture_output
from hsae.interfaces.extraction.layers import ResolvedLayer, resolve_layer
from hsae.interfaces.extraction.layout import Layout, infer_layout, split_flattened, split_per_image, split_sequence
from hsae.interfaces.extractor import Extractor, TokenLogits

VISION_TOWER_TEMPLATES = (
    "model.vision_tower.encoder.layers.{i}",  # transformers >= 5.6
    "model.vision_tower.vision_model.encoder.layers.{i}",  # 4.52 to 5.5
    "vision_tower.vision_model.encoder.layers.{i}",  # before 4.52
)
LANGUAGE_TEMPLATES = (
    "model.language_model.layers.{i}",  # transformers >= 4.52
    "language_model.model.layers.{i}",  # before 4.52
)


class TransformersExtractor(Extractor):
    """Base of extractors over a transformers image-text model and its processor."""

    layer_templates: ClassVar[Mapping[str, Sequence[str]]] = {}
    vision_layout: ClassVar[Layout] = "per_image"
    vision_class_token: ClassVar[bool] = False
    model_types: ClassVar[tuple[str, ...]] = ()

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self._model: Any = None
        self._processor: Any = None
        self._layer: ResolvedLayer | None = None
        self._width: int | None = None

    # -- loading ---------------------------------------------------------------------------

    def _load_model(self, dtype: torch.dtype):
        return AutoModelForImageTextToText.from_pretrained(self.config.model, dtype=dtype)

    def _load_processor(self):
        return AutoProcessor.from_pretrained(self.config.model)

    def load(self) -> None:
        if self._model is not None:
            return
        device = resolve_device(self.config.device)
        dtype = resolve_dtype(self.config.dtype, device)
        try:
            processor = self._load_processor()
            model = self._load_model(dtype)
        except (OSError, ValueError, ImportError) as exc:
            raise BadInput(f"cannot load model {self.config.model!r} with from_pretrained: {exc}") from None
        if self.model_types and model.config.model_type not in self.model_types:
            raise BadInput(
                f"model {self.config.model!r} is a {model.config.model_type!r} model; "
                f"the {self.__class__.__name__} extractor expects {' or '.join(self.model_types)}"
            )
        self._check_processor(processor)
        self._model, self._processor, self._device = model.to(device).eval(), processor, device
        # transformers 5 takes the processor's own options in processor_kwargs; 4.x took them loose.
        chat = getattr(processor, "apply_chat_template", None)  # absent on a bare image processor
        takes_nested = chat is not None and "processor_kwargs" in inspect.signature(chat).parameters
        self._padding = {"processor_kwargs": {"padding": True}} if takes_nested else {"padding": True}
        self._layer = resolve_layer(self._model, self.config.layer, self.layer_templates, where=f"model {self.config.model!r}")
        self._width = self._layer_width()

    def _check_processor(self, processor) -> None:
        if not hasattr(processor, "image_processor"):
            raise BadInput(
                f"AutoProcessor.from_pretrained({self.config.model!r}) returned {type(processor).__name__}, "
                "which has no image processor; the directory needs processor_config.json (or preprocessor_config.json)"
            )
        if getattr(processor, "chat_template", None) is None:
            raise BadInput(f"the processor of {self.config.model!r} has no chat template (chat_template.jinja)")

    def _layer_width(self) -> int:
        """d from the config of the layer's tower, or from one probe forward when unknown."""
        config = self._model.config
        tower = {"vision": "vision_config", "language": "text_config"}.get(self._layer.kind or "")
        sub = getattr(config, tower, None) if tower else None
        if sub is not None and getattr(sub, "hidden_size", None):
            return int(sub.hidden_size)
        return int(self._hidden([Image.new("RGB", (32, 32), (128, 128, 128))])[0].shape[-1])

    # -- running ---------------------------------------------------------------------------

    @property
    def width(self) -> int:
        if self._width is None:
            raise RuntimeError("width is known after load()")
        return self._width

    @property
    def has_class_token(self) -> bool:
        return self.vision_class_token and self._layer is not None and self._layer.kind == "vision"

    def source(self) -> dict[str, Any]:
        self.load()
        return {
            "model": self.config.model,
            "layer": self._layer.path,
            "layer_requested": self.config.layer,
            "prompt": self.config.prompt,
            "tokens": self.config.tokens,
            "model_type": self._model.config.model_type,
        }

    def _inputs(self, images: Sequence[Any], prompt: str | Sequence[str] | None = None,
                answers: Sequence[str] | None = None):
        """The processed chat batch: each image with ``prompt`` (default: the configured one; a
        list gives one per image), then the generation prompt, or the assistant turn
        ``answers[i]`` when given."""
        prompt = self.config.prompt if prompt is None else prompt
        texts = [prompt] * len(images) if isinstance(prompt, str) else list(prompt)
        conversations = [
            [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]
            for image, text in zip(images, texts)
        ]
        if answers is not None:
            for conversation, answer in zip(conversations, answers):
                conversation.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
        batch = self._processor.apply_chat_template(
            conversations,
            add_generation_prompt=answers is None,
            tokenize=True,
            return_dict=True,
            return_tensors="pt",
            **self._padding,
        )
        return batch.to(device=self._device, dtype=self._model.dtype)

    def _hidden(self, images: Sequence[Any]):
        inputs = self._inputs(images)
        with torch.inference_mode():
            hidden = capture_output(self._layer.module, lambda: self._model(**inputs), stop=True)
        return hidden, inputs

    def _layout(self, hidden: torch.Tensor, inputs, n_images: int) -> Layout:
        if self._layer.kind == "vision":
            return self.vision_layout
        if self._layer.kind == "language":
            return "sequence"
        return infer_layout(hidden, inputs, n_images)

    def _image_token_id(self) -> int | None:
        """The id that fills image positions in ``input_ids``. The model config comes first:
        Gemma-3's processor calls its placeholder (begin-of-image) the image token."""
        owners = ((self._model.config, "image_token_id"), (self._model.config, "image_token_index"), (self._processor, "image_token_id"))
        for owner, attr in owners:
            value = getattr(owner, attr, None)
            if isinstance(value, int):
                return value
        return None

    def activations(self, images: Sequence[Any]) -> list[torch.Tensor]:
        self.load()
        hidden, inputs = self._hidden(images)
        layout = self._layout(hidden, inputs, len(images))
        if layout != "sequence" and self.config.tokens == "text":
            raise BadInput(
                f"layer {self.config.layer!r} of {self.config.model!r} sees image patches only ({layout} output), "
                "so tokens: text keeps nothing; use tokens: image (or all)"
            )
        if layout == "sequence":
            per_image = split_sequence(
                hidden, inputs["input_ids"], inputs.get("attention_mask"), self._image_token_id(), self.config.tokens
            )
        elif layout == "flattened":
            per_image = split_flattened(hidden, inputs["image_grid_thw"])
        else:
            per_image = split_per_image(hidden, len(images))
        return [rows.to("cpu", torch.float32) for rows in per_image]

    # -- whole-model runs (steering, spliced evaluation) ------------------------------------

    @property
    def target_module(self) -> torch.nn.Module:
        self.load()
        return self._layer.module

    def generate(self, images: Sequence[Any], prompt: str | Sequence[str], max_new_tokens: int) -> list[str]:
        self.load()
        tokenizer = getattr(self._processor, "tokenizer", None)
        side = getattr(tokenizer, "padding_side", None)
        if tokenizer is not None:
            tokenizer.padding_side = "left"  # new tokens start at the same column for every prompt
        try:
            inputs = self._inputs(images, prompt)
        finally:
            if tokenizer is not None:
                tokenizer.padding_side = side
        with torch.inference_mode():
            out = self._model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False,
                                       pad_token_id=getattr(tokenizer, "pad_token_id", None))
        new_tokens = out[:, inputs["input_ids"].shape[1]:]
        return [text.strip() for text in self._processor.batch_decode(new_tokens, skip_special_tokens=True)]

    def token_logits(self, images: Sequence[Any], prompt: str, answers: Sequence[str] | None = None) -> TokenLogits:
        self.load()
        inputs = self._inputs(images, prompt, answers)
        with torch.inference_mode():
            logits = self._model(**inputs).logits[:, :-1]
        ids = inputs["input_ids"]
        attention = inputs.get("attention_mask")
        keep = torch.ones_like(ids, dtype=torch.bool) if attention is None else attention.bool()
        image_token = self._image_token_id()
        if image_token is not None:
            keep &= ids != image_token
        return TokenLogits(logits, ids[:, 1:], keep[:, 1:] & keep[:, :-1])
