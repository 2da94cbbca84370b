"""``inaturalist``: the paper's iNaturalist sample (Appendix E.1) from a local copy.

Layout: ``root/<pool>/<species folder>/*.jpg`` (the iNat 2021 release's ``train/``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from hsae.errors import BadInput
from hsae.interfaces.plugin import PluginConfig
from hsae_plugins.datasets.image_files import ImageFile, ImageFileDataset, list_class_folders
from hsae_plugins.datasets.sampling import disjoint_halves


class INaturalistConfig(PluginConfig):
    root: Path = Field(description="iNaturalist directory")
    pool: str = Field("train", description="sub-folder (one folder per species) both splits are drawn from")
    split: Literal["train", "test"] = Field("train", description="which of the two disjoint draws")
    per_species: int = Field(5, ge=1, description="images per species in each split (the paper: 5)")
    seed: int = Field(0, description="seed of the per-species draw")
    max_species: int | None = Field(None, ge=1, description="use only the first N species by folder name (None: all)")


class INaturalistSample(ImageFileDataset):
    """iNaturalist as in the paper: per species, ``per_species`` images for train and as many other ones for test.

    A species with fewer than ``2·per_species`` images gives ``⌊n/2⌋`` to each split.
    """

    Config = INaturalistConfig

    def list_files(self) -> list[ImageFile]:
        cfg = self.config
        folder = cfg.root / cfg.pool
        species = list_class_folders(folder, "inaturalist pool")
        if not species:
            raise BadInput(f"inaturalist: {folder} has no species folders with images")
        files = []
        for name in sorted(species)[: cfg.max_species]:
            train, test = disjoint_halves(species[name], cfg.per_species, cfg.seed, name)
            chosen = train if cfg.split == "train" else test
            files += [ImageFile(p.relative_to(cfg.root).as_posix(), p, name) for p in chosen]
        return files
