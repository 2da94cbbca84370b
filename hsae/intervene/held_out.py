"""Held-out images (steering, spliced evaluation): a dataset plugin's images, less those the
run trained on (whose ids its store holds).

An image is named by its position in the dataset's order (``number``) and its id; a steering
run records both, so a later ``hsae judge`` can show a judge the same images again.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from typing import Any

import numpy as np

from hsae import registry
from hsae.errors import BadInput
from hsae.interfaces.dataset import ImageDataset, ImageItem


def image_dataset(spec: dict[str, Any], where: str) -> ImageDataset:
    dataset = registry.create("hsae.datasets", spec)
    if not isinstance(dataset, ImageDataset):
        raise BadInput(f"{where}: {spec['name']!r} is not an image dataset")
    return dataset


def held_out_numbers(dataset: ImageDataset, training_ids: set[str]) -> list[int]:
    """Positions of the images whose id is not in ``training_ids``."""
    return [n for n, item in enumerate(dataset) if item.image_id not in training_ids]


def draw(pool: list[int], draws: int, size: int, seed: int, where: str) -> list[list[int]]:
    """``draws`` sets of ``size`` distinct positions from ``pool``, set ``i`` seeded by (seed, i)."""
    if len(pool) < size:
        raise BadInput(f"{where}: {size} held-out images asked for, but only {len(pool)} images are held out; "
                       "name a larger or another image set (e.g. coco with split: test)")
    return [sorted(int(n) for n in np.random.default_rng([seed, i]).choice(pool, size, replace=False))
            for i in range(draws)]


def images_at(dataset: ImageDataset, numbers: Iterable[int]) -> dict[int, ImageItem]:
    """The dataset's items at the given positions (one pass over the dataset)."""
    wanted = set(numbers)
    if not wanted:
        return {}
    found = {n: item for n, item in enumerate(itertools.islice(iter(dataset), max(wanted) + 1)) if n in wanted}
    missing = sorted(wanted - set(found))
    if missing:
        raise BadInput(f"the image dataset now yields fewer images than before: positions {missing[:5]} are gone")
    return found
