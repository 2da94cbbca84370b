"""``hf_dataset``: images from a Hugging Face dataset saved on disk (``save_to_disk``).

Needs the optional ``datasets`` package. Images are decoded here rather than by
``datasets``, so that an undecodable row is reported and skipped like an unreadable file.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

from PIL import Image
from pydantic import Field

from hsae.errors import BadInput
from hsae.interfaces.dataset import ImageDataset, ImageItem
from hsae.interfaces.plugin import PluginConfig
from hsae_plugins.datasets.image_files import UNREADABLE, read_rgb, report_unreadable


class HFDatasetConfig(PluginConfig):
    path: Path = Field(description="directory written by Dataset.save_to_disk or DatasetDict.save_to_disk")
    split: str | None = Field(None, description="split to read when the directory holds several (a DatasetDict)")
    image_column: str = Field("image", description="column holding the images (an Image feature, bytes or file paths)")
    label_column: str | None = Field("label", description="column holding labels (ClassLabel names are used); None: no labels")
    id_column: str | None = Field(None, description="column holding image ids; None: the row number")


def _import_datasets():
    try:
        import datasets
    except ImportError:
        datasets = None
    if not hasattr(datasets, "load_from_disk"):  # absent, or a same-named folder on sys.path
        raise BadInput("the hf_dataset plugin needs the 'datasets' package: pip install datasets")
    return datasets


def _to_rgb(value) -> Image.Image:
    """An RGB image from a decoded image, an undecoded ``{"bytes", "path"}`` cell, bytes or a path."""
    if isinstance(value, Image.Image):
        return value.convert("RGB")
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)):
        return read_rgb(io.BytesIO(value))
    if isinstance(value, str):
        return read_rgb(Path(value))
    raise ValueError(f"cell of type {type(value).__name__} is not an image")


class HFDataset(ImageDataset):
    """A local Hugging Face dataset with an image column (and optional label and id columns), in row order."""

    Config = HFDatasetConfig

    def __init__(self, config=None) -> None:
        super().__init__(config)
        self._table = None
        self.skipped: list[tuple[str, str]] = []

    @property
    def table(self):
        if self._table is None:
            self._table = self._open()
        return self._table

    def _open(self):
        datasets = _import_datasets()
        cfg = self.config
        if not cfg.path.is_dir():
            raise BadInput(f"hf_dataset: {cfg.path} is not a directory written by save_to_disk")
        loaded = datasets.load_from_disk(str(cfg.path))
        if isinstance(loaded, datasets.DatasetDict):
            if cfg.split is None or cfg.split not in loaded:
                raise BadInput(f"hf_dataset: {cfg.path} holds the splits {sorted(loaded)}; set split to one of them")
            loaded = loaded[cfg.split]
        for role, column in (("image_column", cfg.image_column), ("label_column", cfg.label_column), ("id_column", cfg.id_column)):
            if column is not None and column not in loaded.column_names:
                raise BadInput(f"hf_dataset: {role} {column!r} is not a column of {cfg.path}; columns: {loaded.column_names}")
        if isinstance(loaded.features[cfg.image_column], datasets.Image):
            loaded = loaded.cast_column(cfg.image_column, datasets.Image(decode=False))
        return loaded

    def _label(self, row) -> str | None:
        column = self.config.label_column
        if column is None or row[column] is None:
            return None
        feature = self.table.features[column]
        return feature.int2str(row[column]) if hasattr(feature, "int2str") else str(row[column])

    def __len__(self) -> int:
        return len(self.table)

    def __iter__(self) -> Iterator[ImageItem]:
        self.skipped = []
        cfg = self.config
        for number, row in enumerate(self.table):
            image_id = str(row[cfg.id_column]) if cfg.id_column else str(number)
            try:
                image = _to_rgb(row[cfg.image_column])
            except UNREADABLE as exc:
                report_unreadable(self.skipped, image_id, f"row {number} of {cfg.path}", exc)
                continue
            yield ImageItem(image_id, image, self._label(row))
