"""Extractor plugins (group ``hsae.extractors``): images in, per-token activations out.

An extractor loads a model once (:meth:`Extractor.load`), hooks one module, and turns a
batch of images (each shown with the prompt) into one ``(n_tokens_i, d)`` tensor per image:
the hooked module's output at the tokens the ``tokens`` option keeps. The extraction stage
(``hsae.extract``) writes those rows to an activation store.

Steering and spliced evaluation (``hsae.intervene``, ``hsae.steer``) also run the whole model
with a hook on that module: they ask for :attr:`Extractor.target_module`, greedy captions
(:meth:`Extractor.generate`) and next-token logits (:meth:`Extractor.token_logits`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from pydantic import Field, field_validator, model_validator

from hsae.interfaces.dataset import ImageItem
from hsae.interfaces.model_source import model_source_problem
from hsae.interfaces.plugin import Plugin, PluginConfig

PAPER_PROMPT = "Describe the image content accurately."
"""The prompt the paper's activations were collected with (Appendix E.1)."""

TokenChoice = Literal["image", "text", "all"]

_DOTTED_PATH = re.compile(r"^[A-Za-z_]\w*(\.\w+)*$")


class ExtractorConfig(PluginConfig):
    model: str = Field(description="a local model directory, or a hub id loaded with from_pretrained")
    layer: str = Field(description="the module to hook: a dotted path, or a short form such as 'vision.23'")
    device: str = Field("auto", description="'auto' (cuda, then mps, then cpu), or a torch device such as 'cpu', 'cuda:1'")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field(
        "auto", description="weights dtype; 'auto': bfloat16 on a GPU that has it, else float16 on GPU, float32 on CPU"
    )
    tokens: TokenChoice = Field("image", description="which tokens' activations to keep: image, text or all")
    batch_size: int = Field(8, ge=1, description="images per forward pass")
    prompt: str = Field(PAPER_PROMPT, description="text shown with every image")

    @field_validator("layer")
    @classmethod
    def _layer_is_a_path(cls, value: str) -> str:
        if not _DOTTED_PATH.match(value):
            raise ValueError(
                f"expected a dotted module path such as 'model.visual.blocks.23' or a short form such as 'vision.23', got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _model_can_load(self) -> "ExtractorConfig":
        """A missing local folder fails here, before any lookup (``hsae.interfaces.model_source``)."""
        problem = None if self.builds_missing_model() else model_source_problem(self.model)
        if problem:
            raise ValueError(problem)
        return self

    def builds_missing_model(self) -> bool:
        """True when the extractor makes a missing ``model`` folder itself (e.g. a tiny test model)."""
        return False


@dataclass
class TokenLogits:
    """Next-token predictions over a batch of prompts: ``logits`` (B, T, V) at every position but
    the last, ``targets`` (B, T) the token that follows each position, and ``mask`` (B, T) the
    positions that are scored (text tokens, not padding, not image placeholders)."""

    logits: torch.Tensor
    targets: torch.Tensor
    mask: torch.Tensor


class Extractor(Plugin):
    """Base of extractor plugins: a model, a hooked module, per-image token activations."""

    Config = ExtractorConfig

    def load(self) -> None:
        """Load model and processor and resolve the layer; a second call does nothing."""
        raise NotImplementedError

    @property
    def width(self) -> int:
        """d, the width of every activation row (known after :meth:`load`)."""
        raise NotImplementedError

    @property
    def has_class_token(self) -> bool:
        """True when each image's first kept row is a class (CLS) token."""
        return False

    def source(self) -> dict[str, Any]:
        """Plain data naming what the activations are (model, resolved layer, prompt, tokens)."""
        raise NotImplementedError

    def activations(self, images: Sequence[Any]) -> list[torch.Tensor]:
        """One ``(n_tokens_i, d)`` tensor per image (PIL RGB) of one batch, on the CPU."""
        raise NotImplementedError

    @property
    def target_module(self) -> torch.nn.Module:
        """The hooked module itself (after :meth:`load`), for hooks that write back."""
        raise NotImplementedError

    def generate(self, images: Sequence[Any], prompt: str | Sequence[str], max_new_tokens: int) -> list[str]:
        """One greedy answer per image (the image shown with ``prompt``, or with ``prompt[i]``),
        the new text only."""
        raise NotImplementedError

    def token_logits(self, images: Sequence[Any], prompt: str, answers: Sequence[str] | None = None) -> TokenLogits:
        """Next-token logits on each image shown with ``prompt`` and, when given, followed by
        the assistant's ``answers[i]`` (teacher forcing)."""
        raise NotImplementedError

    def iter_activations(self, items: Iterable[ImageItem]) -> Iterator[tuple[list[ImageItem], list[torch.Tensor]]]:
        """Run ``items`` in batches of ``batch_size``; yield each batch with its activations."""
        self.load()
        batch: list[ImageItem] = []
        for item in items:
            batch.append(item)
            if len(batch) == self.config.batch_size:
                yield batch, self.activations([it.image for it in batch])
                batch = []
        if batch:
            yield batch, self.activations([it.image for it in batch])
