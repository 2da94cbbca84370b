"""Dataset plugins (group ``hsae.datasets``).

Two kinds exist. An *activation source* makes activations itself (e.g. a planted synthetic
hierarchy) and writes them to an activation store. An *image dataset* yields images that an
extractor plugin turns into activations.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from hsae.interfaces.plugin import Plugin

Progress = Callable[[int, int], None]
"""Called as ``progress(done, total)`` while long work runs."""


class ActivationSource(Plugin):
    """A dataset that writes an activation store (``docs/formats.md``) without a model."""

    def write_store(self, path: Path, progress: Progress | None = None) -> None:
        """Write (or finish writing, if interrupted) the store at ``path``."""
        raise NotImplementedError


@dataclass
class ImageItem:
    """One image of an image dataset: a stable id, the image, and an optional label."""

    image_id: str
    image: Any  # PIL.Image.Image, RGB
    label: str | None = None


class ImageDataset(Plugin):
    """A dataset of images, read in a fixed order for a given seed."""

    def __len__(self) -> int:
        raise NotImplementedError

    def __iter__(self) -> Iterator[ImageItem]:
        raise NotImplementedError
