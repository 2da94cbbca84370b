"""``precomputed``: embeddings that already exist, in the store or in a side file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from hsae.errors import BadInput
from hsae.interfaces.backbone import Backbone
from hsae.interfaces.plugin import PluginConfig


class PrecomputedConfig(PluginConfig):
    path: Path | None = Field(None, description="a .npy or .h5/.hdf5 file; None: the store's own 'embeddings' dataset")
    dataset: str = Field("embeddings", description="dataset name inside an HDF5 file")


def _read_side_file(path: Path, dataset: str) -> np.ndarray:
    if not path.is_file():
        raise BadInput(f"precomputed backbone: {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            return np.load(path, allow_pickle=False)
        except ValueError as exc:
            raise BadInput(f"precomputed backbone: {path} is not a plain numeric .npy array: {exc}") from None
    if suffix in (".h5", ".hdf5"):
        import h5py

        with h5py.File(path, "r") as f:
            if dataset not in f:
                raise BadInput(f"precomputed backbone: {path} has no dataset {dataset!r}; it has {sorted(f)}")
            return f[dataset][()]
    raise BadInput(f"precomputed backbone: {path} must be a .npy or .h5/.hdf5 file")


class Precomputed(Backbone):
    """Embeddings read as they are: the store's 'embeddings' dataset, or a .npy/.h5 file with one row per image."""

    Config = PrecomputedConfig

    def embed(self, images) -> Any:
        raise BadInput("the precomputed backbone reads stored embeddings; it cannot embed new images")

    def store_embeddings(self, store) -> np.ndarray:
        if self.config.path is None:
            if not store.has("embeddings"):
                raise BadInput(f"precomputed backbone: store {store.path} has no 'embeddings' dataset; set path to a side file")
            values, where = np.asarray(store.read("embeddings")), f"{store.path} dataset 'embeddings'"
        else:
            values, where = _read_side_file(self.config.path, self.config.dataset), str(self.config.path)
        if values.ndim != 2 or values.shape[0] != store.n_images:
            raise BadInput(
                f"precomputed backbone: {where} has shape {values.shape}; expected ({store.n_images}, D), "
                f"one row per image of store {store.path}"
            )
        if not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
            raise BadInput(f"precomputed backbone: {where} must hold finite numbers")
        return values.astype(np.float32, copy=False)
