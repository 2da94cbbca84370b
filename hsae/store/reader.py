"""Reading an activation store, checked on opening, in bounded memory."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from hsae.errors import BadInput
from hsae.store import shuffle
from hsae.store.layout import (
    ACTIVATIONS,
    EMBEDDINGS,
    IMAGE_IDS,
    IMAGE_INDEX,
    parts_folder,
    read_attrs,
)
from hsae.store.shuffle import ShufflePlan


class ActivationStore:
    """A finished activation store, opened read-only (``docs/formats.md`` § Activation store).

    Opening checks the layout and raises ``BadInput`` naming the file and dataset. Rows
    (``rows``, ``iter_chunks``, ``batches``) come as float32, whatever the stored float type.
    ``n_images`` is the length of ``embeddings`` or ``image_ids``, else one more than the
    last ``image_index``, else None.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)
        self._file = self._open()
        try:
            self._activations = self._checked_activations()
            self.n_images = self._checked_images()
            self.attrs: dict[str, Any] = read_attrs(self._file, str(self.path))
        except BaseException:
            self._file.close()
            raise
        self.n_rows, self.width = self._activations.shape
        self.dtype: str = self._activations.dtype.name

    def _open(self) -> h5py.File:
        if not self.path.exists():
            if parts_folder(self.path).exists():
                raise BadInput(f"{self.path}: the activation store is unfinished (its committed "
                               f"rows are in {parts_folder(self.path)}); resume the writer (a "
                               f"StoreWriter on the same path) and finish it")
            raise BadInput(f"{self.path}: no such file; expected an HDF5 activation store with "
                           f"dataset {ACTIVATIONS!r}")
        if not self.path.is_file() or not h5py.is_hdf5(self.path):
            raise BadInput(f"{self.path}: not an HDF5 file; expected an HDF5 activation store "
                           f"with dataset {ACTIVATIONS!r}")
        try:
            return h5py.File(self.path, "r")
        except OSError as error:
            raise BadInput(f"{self.path}: cannot be opened as HDF5 ({error})") from None

    def _optional(self, name: str) -> h5py.Dataset | None:
        found = self._file.get(name)
        if found is not None and not isinstance(found, h5py.Dataset):
            raise BadInput(f"{self.path}: {name!r} is a group; expected a dataset")
        return found

    def _checked_activations(self) -> h5py.Dataset:
        activations = self._optional(ACTIVATIONS)
        if activations is None:
            raise BadInput(f"{self.path}: no dataset {ACTIVATIONS!r} (the rows to train on, "
                           f"shape (N, d))")
        if activations.ndim != 2 or activations.shape[1] < 1:
            raise BadInput(f"{self.path}: dataset {ACTIVATIONS!r} has shape {activations.shape}; "
                           f"expected (N, d) with d >= 1")
        if activations.dtype.kind != "f":
            raise BadInput(f"{self.path}: dataset {ACTIVATIONS!r} has dtype {activations.dtype}; "
                           f"expected float16 or float32")
        return activations

    def _checked_images(self) -> int | None:
        """Check ``image_index``, ``embeddings`` and ``image_ids`` against one another (without
        reading ``image_index`` whole) and return the number of images."""
        n_rows = self._activations.shape[0]
        index, embeddings, ids = (self._optional(name) for name in (IMAGE_INDEX, EMBEDDINGS, IMAGE_IDS))
        if index is not None and (index.shape != (n_rows,) or index.dtype.kind not in "iu"):
            raise BadInput(f"{self.path}: dataset {IMAGE_INDEX!r} has shape {index.shape} and dtype "
                           f"{index.dtype}; expected integers of shape ({n_rows},)")
        if embeddings is not None and (embeddings.ndim != 2 or embeddings.dtype.kind != "f"):
            raise BadInput(f"{self.path}: dataset {EMBEDDINGS!r} has shape {embeddings.shape} and "
                           f"dtype {embeddings.dtype}; expected floats of shape (n_images, D)")
        if ids is not None and (ids.ndim != 1 or h5py.check_string_dtype(ids.dtype) is None):
            raise BadInput(f"{self.path}: dataset {IMAGE_IDS!r} has shape {ids.shape} and dtype "
                           f"{ids.dtype}; expected strings of shape (n_images,)")
        if embeddings is not None and ids is not None and len(embeddings) != len(ids):
            raise BadInput(f"{self.path}: dataset {EMBEDDINGS!r} has {len(embeddings)} rows but "
                           f"dataset {IMAGE_IDS!r} has {len(ids)} ids")
        listed = embeddings if embeddings is not None else ids
        if index is not None and n_rows:
            first, last = int(index[0]), int(index[-1])
            if first < 0:
                raise BadInput(f"{self.path}: dataset {IMAGE_INDEX!r} starts at {first}; image "
                               f"numbers start at 0")
            if listed is not None and last >= len(listed):
                raise BadInput(f"{self.path}: dataset {IMAGE_INDEX!r} reaches image {last}, but "
                               f"dataset {listed.name.lstrip('/')!r} lists {len(listed)} images")
        if listed is not None:
            return len(listed)
        if index is not None:
            return int(index[-1]) + 1 if n_rows else 0
        return None

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> ActivationStore:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def has(self, name: str) -> bool:
        """Whether the file holds a dataset or group ``name`` (e.g. ``truth/leaf_dirs``)."""
        return name in self._file

    def _dataset(self, name: str) -> h5py.Dataset:
        found = self._optional(name)
        if found is None:
            raise BadInput(f"{self.path}: no dataset {name!r}")
        return found

    def read(self, name: str) -> np.ndarray:
        """The whole dataset ``name``, strings decoded to ``str``."""
        dataset = self._dataset(name)
        if h5py.check_string_dtype(dataset.dtype) is not None:
            return dataset.asstr()[()]
        return dataset[()]

    def dataset_attrs(self, name: str) -> dict[str, Any]:
        """The attributes written with ``StoreWriter.put(name, array, attrs)``."""
        return read_attrs(self._dataset(name), f"{self.path}, dataset {name!r}")

    def _read_into(self, out: np.ndarray, start: int, stop: int) -> None:
        """Read rows ``[start, stop)`` of ``activations`` into the float32 array ``out``."""
        if stop == start:
            return
        if self._activations.dtype == np.float32:
            self._activations.read_direct(out, np.s_[start:stop])
        else:
            out[...] = self._activations[start:stop]

    def rows(self, start: int, stop: int) -> np.ndarray:
        """Rows ``[start, stop)`` of ``activations`` as float32."""
        if not 0 <= start <= stop <= self.n_rows:
            raise ValueError(f"{self.path}: rows [{start}, {stop}) are outside [0, {self.n_rows})")
        out = np.empty((stop - start, self.width), dtype=np.float32)
        self._read_into(out, start, stop)
        return out

    def iter_chunks(self, rows_per_chunk: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(start, rows)`` for consecutive blocks of ``rows_per_chunk`` rows, in order."""
        if rows_per_chunk < 1:
            raise ValueError(f"rows_per_chunk must be positive, got {rows_per_chunk}")
        for start in range(0, self.n_rows, rows_per_chunk):
            yield start, self.rows(start, min(start + rows_per_chunk, self.n_rows))

    def image_index(self) -> np.ndarray | None:
        """``image_index`` as int64 (checked: from 0 up, never decreasing), or None."""
        dataset = self._optional(IMAGE_INDEX)
        if dataset is None:
            return None
        index = dataset[()].astype(np.int64)
        step_down = np.flatnonzero(np.diff(index) < 0)
        if (len(index) and index[0] < 0) or len(step_down):
            row = int(step_down[0]) + 1 if len(step_down) else 0
            raise BadInput(f"{self.path}: dataset {IMAGE_INDEX!r} must start at 0 or more and "
                           f"never decrease (an image's rows are contiguous); row {row} breaks this")
        return index

    def check_width(self, expected: int) -> None:
        if self.width != expected:
            raise BadInput(f"{self.path}: dataset {ACTIVATIONS!r} has width {self.width}, "
                           f"expected {expected}")

    def _check_rows_finite(self, rows: np.ndarray, start: int) -> None:
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            raise BadInput(f"{self.path}: dataset {ACTIVATIONS!r} has NaN or infinite values in rows "
                           f"{start}..{start + len(rows) - 1}, first in row "
                           f"{start + int(np.argmin(finite))}")

    def check_finite(self) -> None:
        """Read every row once (in ``WINDOW_BYTES`` pieces) and check that all are finite."""
        rows_per_chunk = max(1, shuffle.WINDOW_BYTES // (self.width * 4))
        for start, rows in self.iter_chunks(rows_per_chunk):
            self._check_rows_finite(rows, start)

    def _plan(self, seed: int) -> ShufflePlan:
        compressed = self._activations.id.get_create_plist().get_nfilters() > 0
        return ShufflePlan.for_rows(self.n_rows, self.width, self._activations.dtype.itemsize, seed,
                                    chunk_rows=self._activations.chunks[0] if compressed else None)

    def _read_window(self, window: shuffle.Window, buffer: np.ndarray) -> np.ndarray:
        """Read the window's blocks, checked, into the front of ``buffer``; return that part."""
        at = 0
        for start, stop in window.ranges:
            block = buffer[at:at + stop - start]
            self._read_into(block, start, stop)
            self._check_rows_finite(block, start)
            at += stop - start
        return buffer[:at]

    def batches(self, batch_size: int, seed: int, start_step: int = 0, part: tuple[int, int] = (0, 1)):
        """An endless stream of shuffled float32 ``torch.Tensor`` batches of ``batch_size`` rows,
        the same for the same ``seed`` (order: ``hsae.store.shuffle``); with ``start_step=s``
        it starts at the s-th batch of the fresh stream without reading what comes before.
        ``part=(i, m)``: of each batch only its i-th of m equal slices of rows, in order (the
        rows process i of a data-parallel run trains on; ``batch_size`` divisible by m).
        Memory is bounded by ``shuffle.WINDOW_BYTES``, not by the store's size."""
        import torch  # here, so that writing a store (e.g. in a worker) does not import torch

        index, parts = part
        if batch_size < 1 or start_step < 0 or seed < 0 or not 0 <= index < parts or batch_size % parts:
            raise ValueError(f"batches needs batch_size >= 1, seed >= 0, start_step >= 0 and a part i of m "
                             f"with 0 <= i < m dividing the batch size, got {batch_size}, {seed}, {start_step}, "
                             f"{part}")
        if self.n_rows == 0:
            raise BadInput(f"{self.path}: dataset {ACTIVATIONS!r} has no rows")
        plan = self._plan(seed)
        buffer = np.empty((plan.blocks_per_window * plan.block_rows, self.width), dtype=np.float32)
        lo, hi = index * batch_size // parts, (index + 1) * batch_size // parts  # this part of every batch
        pending: list[np.ndarray] = []  # gathered copies: ``buffer`` is refilled by the next window
        position = 0  # rows of the current batch passed so far
        for window in plan.windows(start_step * batch_size):
            rows = self._read_window(window, buffer)
            order = window.order[window.skip:]
            at = 0
            while at < len(order):
                take = min(batch_size - position, len(order) - at)
                first, last = max(lo, position), min(hi, position + take)
                if first < last:
                    pending.append(rows[order[at + first - position:at + last - position]])
                position += take
                at += take
                if position == batch_size:
                    yield torch.from_numpy(pending[0] if len(pending) == 1 else np.concatenate(pending))
                    pending, position = [], 0
