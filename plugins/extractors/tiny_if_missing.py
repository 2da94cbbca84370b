"""The ``tiny_if_missing`` option of the family extractors (qwen3_vl, gemma3, llava): a missing
``model`` folder is first filled with the family's tiny random-weight model
(:mod:`hsae_plugins.extractors.tiny_models`). It makes the offline image demo
(``recipes/quickstart_images.yaml``) run on a fresh machine; a real model folder is never
replaced, and without the option a missing folder is refused before anything runs."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from hsae.interfaces.extractor import ExtractorConfig
from hsae_plugins.extractors.tiny_models import build


class TinyIfMissingConfig(ExtractorConfig):
    tiny_if_missing: bool = Field(
        False, description="when the local folder `model` does not exist, build this family's tiny random-weight "
        "model there first (for offline demos and tests: its activations mean nothing)")

    def builds_missing_model(self) -> bool:
        return self.tiny_if_missing


class TinyIfMissing:
    """Mixin of a family's extractor (before its ``TransformersExtractor`` base): ``load`` builds
    the tiny ``tiny_family`` model into a missing ``model`` folder when the option asks for it."""

    Config = TinyIfMissingConfig
    tiny_family: ClassVar[str]

    def load(self) -> None:
        folder = Path(self.config.model).expanduser()
        if self.config.tiny_if_missing and not folder.exists():
            build(self.tiny_family, folder)
        super().load()
