"""Backbone embeddings of a store's images, computed once per image set and cached.

The images are rebuilt from the dataset the store's attributes name (``dataset`` and
``dataset_options``, written by the extraction stage), checked one by one against the
store's ``image_ids``, embedded in batches, and saved as one HDF5 file per (backbone
options, image set) in the folder ``<store>.embeddings/`` (or in the run folder when the
store's folder is read-only). Each file is written under a temporary name and renamed, so a
killed process never leaves a partial cache entry.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np

from hsae import registry
from hsae.errors import BadInput
from hsae.interfaces.dataset import ImageDataset, ImageItem
from hsae.store.layout import IMAGE_IDS

_RUNTIME_OPTIONS = ("device", "batch_size")  # change how, not what, is computed


def store_images(store) -> Iterator[ImageItem]:
    """The images ``store`` was extracted from, in store order."""
    attrs = store.attrs
    if "dataset" not in attrs or not isinstance(attrs.get("dataset_options"), dict):
        raise BadInput(
            f"{store.path} does not name the image dataset it was extracted from (attributes 'dataset' and "
            "'dataset_options'); give HMS embeddings with the precomputed backbone instead"
        )
    dataset = registry.create("hsae.datasets", {"name": attrs["dataset"], **attrs["dataset_options"]})
    if not isinstance(dataset, ImageDataset):
        raise BadInput(f"{store.path}: dataset {attrs['dataset']!r} is not an image dataset, so there are no images to embed")
    ids = list(store.read(IMAGE_IDS)) if store.has(IMAGE_IDS) else None
    count = 0
    for count, item in enumerate(itertools.islice(iter(dataset), store.n_images), start=1):
        if ids is not None and item.image_id != ids[count - 1]:
            raise BadInput(
                f"{store.path}: image {count - 1} of dataset {attrs['dataset']!r} is {item.image_id!r}, but the store "
                f"was extracted from {ids[count - 1]!r}; the images changed since extraction"
            )
        yield item
    if count != store.n_images:
        raise BadInput(f"{store.path}: dataset {attrs['dataset']!r} now yields {count} images; the store has {store.n_images}")


def cache_key(backbone, store) -> str:
    """A digest of the backbone's name and options and of the store's image set."""
    options = {k: v for k, v in backbone.config.model_dump(mode="json").items() if k not in _RUNTIME_OPTIONS}
    images = list(store.read(IMAGE_IDS)) if store.has(IMAGE_IDS) else [store.attrs.get("dataset_options"), store.n_images]
    blob = json.dumps(
        {"backbone": getattr(backbone, "plugin_name", type(backbone).__name__), "options": options,
         "dataset": store.attrs.get("dataset"), "images": images},
        sort_keys=True, default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:20]


def _cache_folder(store, run_root: Path | None) -> Path | None:
    beside = store.path.with_name(store.path.name + ".embeddings")
    if os.access(store.path.parent, os.W_OK):
        return beside
    return Path(run_root) / "embeddings" if run_root is not None else None


def compute_embeddings(backbone, store) -> np.ndarray:
    """``(store.n_images, D)`` float32 embeddings of the store's images, in batches."""
    parts = []
    items = store_images(store)
    while batch := list(itertools.islice(items, backbone.batch_size)):
        parts.append(np.asarray(backbone.embed([item.image for item in batch]), dtype=np.float32))
    values = np.concatenate(parts)
    if values.ndim != 2 or not np.isfinite(values).all():
        raise BadInput(f"backbone {type(backbone).__name__} gave embeddings of shape {values.shape} with non-finite values")
    return values


def store_embeddings(backbone, store, run_root: Path | None = None) -> np.ndarray:
    """``(store.n_images, D)`` embeddings of the store's images: the backbone's own
    (:meth:`hsae.interfaces.backbone.Backbone.store_embeddings`), else :func:`cached_store_embeddings`."""
    own = backbone.store_embeddings(store)
    return np.asarray(own) if own is not None else cached_store_embeddings(backbone, store, run_root)


def cached_store_embeddings(backbone, store, run_root: Path | None = None) -> np.ndarray:
    """The store's image embeddings from the cache (beside the store, or in ``run_root`` when the
    store's folder is read-only), computing and caching them on a miss."""
    folder = _cache_folder(store, run_root)
    path = folder / f"{cache_key(backbone, store)}.h5" if folder is not None else None
    if path is not None and path.exists():
        with h5py.File(path, "r") as f:
            return f["embeddings"][()]
    values = compute_embeddings(backbone, store)
    if path is not None:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        with h5py.File(tmp, "w") as f:
            f.create_dataset("embeddings", data=values)
            f.attrs["backbone"] = getattr(backbone, "plugin_name", type(backbone).__name__)
            f.attrs["options"] = backbone.config.model_dump_json()
            f.attrs["store"] = str(store.path)
        os.replace(tmp, path)
    return values
