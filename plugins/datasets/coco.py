"""``coco``: the paper's COCO sample (Appendix E.1) from a local copy and its instances file.

Layout: an image directory (e.g. ``train2017/``) and its ``instances_*.json``. Categories are
taken in id order; each draws, from the images that contain it and that no earlier category
took, ``per_category`` images for train and as many other ones for test. So no image appears
twice, and its label is the category it was drawn for.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Literal

from pydantic import Field

from hsae.errors import BadInput
from hsae.interfaces.plugin import PluginConfig
from hsae_plugins.datasets.image_files import ImageFile, ImageFileDataset
from hsae_plugins.datasets.sampling import disjoint_halves


class COCOConfig(PluginConfig):
    images: Path = Field(description="directory of the COCO images (file_name in the annotations is relative to it)")
    annotations: Path = Field(description="the instances_*.json annotation file of those images")
    split: Literal["train", "test"] = Field("train", description="which of the two disjoint draws")
    per_category: int = Field(250, ge=1, description="images per category in each split (the paper: 250)")
    seed: int = Field(0, description="seed of the per-category draw")
    max_categories: int | None = Field(None, ge=1, description="use only the first N categories by id (None: all 80)")


def _read_instances(path: Path) -> dict:
    if not path.is_file():
        raise BadInput(f"coco: annotation file {path} does not exist")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadInput(f"coco: {path} is not valid JSON: {exc}") from None
    missing = [key for key in ("images", "annotations", "categories") if key not in data]
    if missing:
        raise BadInput(f"coco: {path} lacks the key(s) {missing}; expected an instances_*.json file")
    return data


class COCOSample(ImageFileDataset):
    """COCO as in the paper: per category, ``per_category`` images for train and as many for test, disjoint."""

    Config = COCOConfig

    def list_files(self) -> list[ImageFile]:
        cfg = self.config
        data = _read_instances(cfg.annotations)
        file_names = {image["id"]: image["file_name"] for image in data["images"]}
        containing: dict[int, set[int]] = defaultdict(set)
        for ann in data["annotations"]:
            containing[ann["category_id"]].add(ann["image_id"])
        categories = sorted(data["categories"], key=lambda c: c["id"])[: cfg.max_categories]
        taken: set[int] = set()
        files = []
        for category in categories:
            candidates = sorted((containing[category["id"]] & file_names.keys()) - taken)
            train, test = disjoint_halves(candidates, cfg.per_category, cfg.seed, str(category["id"]))
            taken.update(train, test)
            for image_id in train if cfg.split == "train" else test:
                name = file_names[image_id]
                files.append(ImageFile(name, cfg.images / name, category["name"]))
        return files
