"""``color``: the Color dataset's mono-semantic subset with the paper's 8:2 split (Appendix E.1).

The Color dataset (PACE, Wang et al. 2024) is generated as ``root/<class>/<i>.png``. Which
images form the "mono-semantic subset" is not fixed by its generator, so the subset is either
everything under ``root`` or the files named in ``subset`` (one path relative to ``root`` per line).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from hsae.errors import BadInput
from hsae.interfaces.plugin import PluginConfig
from hsae_plugins.datasets.image_files import ImageFile, ImageFileDataset, list_class_folders
from hsae_plugins.datasets.sampling import shuffled


class ColorConfig(PluginConfig):
    root: Path = Field(description="Color dataset directory, one folder per class")
    subset: Path | None = Field(None, description="text file listing the subset's images relative to root (None: all)")
    split: Literal["train", "test"] = Field("train", description="which part of the split")
    train_fraction: float = Field(0.8, gt=0, lt=1, description="share of each class in train (the paper: 0.8)")
    seed: int = Field(0, description="seed of the per-class split")


class ColorSubset(ImageFileDataset):
    """The Color dataset's mono-semantic subset, split per class into train and test (8:2 by default)."""

    Config = ColorConfig

    def _subset(self) -> set[str] | None:
        path = self.config.subset
        if path is None:
            return None
        if not path.is_file():
            raise BadInput(f"color: subset list {path} does not exist")
        return {line.strip() for line in path.read_text().splitlines() if line.strip()}

    def list_files(self) -> list[ImageFile]:
        cfg = self.config
        classes = list_class_folders(cfg.root, "color root")
        wanted = self._subset()
        files = []
        for name in sorted(classes):
            paths = [p for p in classes[name] if wanted is None or p.relative_to(cfg.root).as_posix() in wanted]
            order = shuffled(paths, cfg.seed, name)
            n_train = round(cfg.train_fraction * len(order))
            chosen = sorted(order[:n_train] if cfg.split == "train" else order[n_train:])
            files += [ImageFile(p.relative_to(cfg.root).as_posix(), p, name) for p in chosen]
        if not files:
            where = f"among the files listed in {cfg.subset}" if wanted is not None else "in its class folders"
            raise BadInput(f"color: no {cfg.split} images under {cfg.root} {where}")
        return files
