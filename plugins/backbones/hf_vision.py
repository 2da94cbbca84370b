"""``hf_vision``: image embeddings from a CLIP-, SigLIP- or DINO-style transformers model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from pydantic import Field, field_validator

from hsae.errors import BadInput
from hsae.interfaces.extraction.device import resolve_device, resolve_dtype
from hsae.interfaces.backbone import Backbone
from hsae.interfaces.model_source import model_source_problem
from hsae.interfaces.plugin import PluginConfig


class HFVisionConfig(PluginConfig):
    model: str = Field(description="a local model directory or hub id (AutoModel + AutoImageProcessor)")
    pooling: Literal["auto", "pooler", "cls", "mean"] = Field(
        "auto",
        description="auto: get_image_features when the model has it (CLIP/SigLIP), else pooler_output, else the "
        "token mean; pooler: pooler_output; cls: the first token; mean: the mean over tokens",
    )
    device: str = Field("auto", description="'auto', 'cpu', 'cuda', ...")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field("auto", description="weights dtype")
    batch_size: int = Field(32, ge=1, description="images per forward pass")

    @field_validator("model")
    @classmethod
    def _model_can_load(cls, value: str) -> str:
        problem = model_source_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class HFVision(Backbone):
    """Pooled image embeddings of a transformers vision model (CLIP, SigLIP, DINOv2, ...) from a directory or hub id."""

    Config = HFVisionConfig

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self.batch_size = self.config.batch_size
        self._model = None

    def _load(self) -> None:
        if self._model is not None:
            return
        from transformers import AutoImageProcessor, AutoModel

        device = resolve_device(self.config.device)
        try:
            self._processor = AutoImageProcessor.from_pretrained(self.config.model)
            model = AutoModel.from_pretrained(self.config.model, dtype=resolve_dtype(self.config.dtype, device))
        except (OSError, ValueError, ImportError) as exc:
            raise BadInput(f"hf_vision: cannot load {self.config.model!r} with from_pretrained: {exc}") from None
        self._model, self._device = model.to(device).eval(), device

    def _pool(self, pixel_values: torch.Tensor) -> torch.Tensor:
        how = self.config.pooling
        if how == "auto" and hasattr(self._model, "get_image_features"):
            features = self._model.get_image_features(pixel_values=pixel_values)
            return features if isinstance(features, torch.Tensor) else features.pooler_output
        out = self._model(pixel_values=pixel_values)
        pooled = getattr(out, "pooler_output", None)
        if how == "pooler" and pooled is None:
            raise BadInput(f"hf_vision: {self.config.model!r} gives no pooler_output; use pooling: cls or mean")
        if how in ("auto", "pooler") and pooled is not None:
            return pooled
        tokens = out.last_hidden_state
        return tokens[:, 0] if how == "cls" else tokens.mean(1)

    def embed(self, images: Sequence[Any]) -> torch.Tensor:
        self._load()
        batch = self._processor(images=list(images), return_tensors="pt")
        pixel_values = batch["pixel_values"].to(self._device, self._model.dtype)
        with torch.inference_mode():
            pooled = self._pool(pixel_values)
        return pooled.reshape(len(images), -1).to("cpu", torch.float32)
