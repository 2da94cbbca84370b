"""``imagenet``: the paper's ImageNet sample (Appendix E.1) from a local copy.

Layout: ``root/train/<wnid>/*.JPEG`` and ``root/val/<wnid>/*.JPEG`` (validation images in
class folders, as the usual ``valprep.sh`` arranges them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from hsae.errors import BadInput
from hsae.interfaces.plugin import PluginConfig
from hsae_plugins.datasets.image_files import ImageFile, ImageFileDataset, list_class_folders
from hsae_plugins.datasets.sampling import shuffled


class ImageNetConfig(PluginConfig):
    root: Path = Field(description="ImageNet directory holding train/ and val/ with one folder per class")
    split: Literal["train", "test"] = Field("train", description="train: a sample of train/; test: all of val/")
    per_class: int = Field(50, ge=1, description="training images drawn per class (the paper: 50)")
    seed: int = Field(0, description="seed of the per-class draw")
    max_classes: int | None = Field(None, ge=1, description="use only the first N classes by name (None: all)")


class ImageNetSample(ImageFileDataset):
    """ImageNet as in the paper: ``per_class`` random train images per class; test = the whole validation set."""

    Config = ImageNetConfig

    def list_files(self) -> list[ImageFile]:
        cfg = self.config
        folder = cfg.root / ("train" if cfg.split == "train" else "val")
        classes = list_class_folders(folder, f"imagenet {cfg.split} split")
        if not classes:
            raise BadInput(f"imagenet: {folder} has no class folders with images (expected {folder}/<wnid>/*.JPEG)")
        names = sorted(classes)[: cfg.max_classes]
        files = []
        for name in names:
            paths = classes[name]
            if cfg.split == "train":
                paths = sorted(shuffled(paths, cfg.seed, name)[: cfg.per_class])
            files += [ImageFile(p.relative_to(cfg.root).as_posix(), p, name) for p in paths]
        return files
