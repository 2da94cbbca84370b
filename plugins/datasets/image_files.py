"""Image datasets backed by files on disk: listing, robust reading, skip-and-report.

Every file-backed dataset (``image_folder`` and the paper samplers) is a fixed, ordered list
of :class:`ImageFile` entries. Iterating reads each file with Pillow and converts it to RGB;
a file that cannot be read is logged (logger ``hsae.datasets``), recorded in
``dataset.skipped`` and left out, so one bad file never stops a run. ``len(dataset)`` counts
the listed files, readable or not.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from PIL import Image, ImageOps

from hsae.errors import BadInput
from hsae.interfaces.dataset import ImageDataset, ImageItem

log = logging.getLogger("hsae.datasets")


def pillow_extensions() -> frozenset[str]:
    """Lower-case file extensions (with the dot) of every format this Pillow can open."""
    return frozenset(ext.lower() for ext, fmt in Image.registered_extensions().items() if fmt in Image.OPEN)


@dataclass(frozen=True)
class ImageFile:
    """One listed image: its id (a stable relative path), where it is, and its label."""

    image_id: str
    path: Path
    label: str | None = None


UNREADABLE = (OSError, ValueError, SyntaxError, Image.DecompressionBombError)
"""What Pillow raises for a file that is not a readable image."""


def report_unreadable(skipped: list[tuple[str, str]], image_id: str, where: str, exc: Exception) -> None:
    """Log an unreadable image and append ``(image_id, reason)`` to ``skipped``."""
    reason = f"{type(exc).__name__}: {exc}"
    log.warning("skipped unreadable image %s: %s", where, reason)
    skipped.append((image_id, reason))


def read_rgb(path: Path | BinaryIO) -> Image.Image:
    """Decode ``path`` (a file or a binary stream) fully and return it as RGB (EXIF orientation applied, transparency on white).

    Raises OSError/ValueError/SyntaxError (as Pillow does) when the file is not a readable image.
    """
    with Image.open(path) as opened:
        opened.load()
        image = ImageOps.exif_transpose(opened)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def list_class_folders(root: Path, what: str) -> dict[str, list[Path]]:
    """``{class name: sorted image files}`` for each sub-folder of ``root`` (searched recursively).

    Files with an extension Pillow does not know are ignored; hidden files and folders too.
    """
    if not root.is_dir():
        raise BadInput(f"{what}: {root} is not a directory")
    extensions = pillow_extensions()
    classes: dict[str, list[Path]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        files = sorted(
            p
            for p in folder.rglob("*")
            if p.is_file() and p.suffix.lower() in extensions and not any(part.startswith(".") for part in p.relative_to(root).parts)
        )
        if files:
            classes[folder.name] = files
    return classes


class ImageFileDataset(ImageDataset):
    """Base of file-backed image datasets; a subclass lists its files in :meth:`list_files`."""

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self._files: list[ImageFile] | None = None
        self.skipped: list[tuple[str, str]] = []
        """``(image_id, reason)`` of every file the last iteration could not read."""

    def list_files(self) -> list[ImageFile]:
        raise NotImplementedError

    @property
    def files(self) -> list[ImageFile]:
        if self._files is None:
            self._files = self.list_files()
        return self._files

    def __len__(self) -> int:
        return len(self.files)

    def __iter__(self) -> Iterator[ImageItem]:
        self.skipped = []
        for entry in self.files:
            try:
                image = read_rgb(entry.path)
            except UNREADABLE as exc:
                report_unreadable(self.skipped, entry.image_id, str(entry.path), exc)
                continue
            yield ImageItem(entry.image_id, image, entry.label)
