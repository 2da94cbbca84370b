"""Writing an activation store that survives its writer being killed at any moment."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from hsae.version import __version__
from hsae.errors import BadInput
from hsae.store.journal import Journal, discard
from hsae.store.layout import (
    ACTIVATIONS,
    FORMAT_ATTR,
    FORMAT_VERSION,
    IMAGE_INDEX,
    STORE_DTYPES,
    as_numpy,
    check_attrs,
    check_extra_name,
    extra_array,
    parts_folder,
    write_attrs,
)
from hsae.store.reader import ActivationStore

ASSEMBLY = "assembling.h5"
MAX_CHUNK_BYTES = 2**32 - 1  # HDF5's limit on one chunk


def sync(path: Path) -> None:
    """fsync a file or folder, so that it survives a machine crash too."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


class StoreWriter:
    """Writes the activation store at ``path`` (``docs/formats.md`` § Activation store).

    ``append`` buffers rows; ``commit`` writes the buffer as one atomic unit into the side
    folder ``<path>.parts/``; ``finish`` builds the HDF5 file and renames it to ``path``. The
    buffer is also committed by itself once it holds ``chunk_rows`` rows, at the end of an
    ``append`` call and, with ``image_index``, only up to the last image boundary, so a unit
    never splits an image. Opening a path whose store is unfinished resumes it after
    ``rows_done`` rows (``images_done`` images); opening a finished store of the same width
    sets ``finished`` and refuses appends. As a context manager it finishes on a normal exit
    and closes (see ``close``) on an exception.
    """

    def __init__(self, path: str | os.PathLike, *, width: int, dtype: str = "float32",
                 chunk_rows: int = 4096, attrs: dict | None = None,
                 with_image_index: bool = False) -> None:
        self.path = Path(path)
        if not isinstance(width, int) or width < 1:
            raise BadInput(f"{self.path}: width must be a positive integer, got {width!r}")
        if dtype not in STORE_DTYPES:
            raise BadInput(f"{self.path}: dtype must be one of {STORE_DTYPES}, got {dtype!r}")
        chunk_bytes = chunk_rows * width * np.dtype(dtype).itemsize if isinstance(chunk_rows, int) else 0
        if not 0 < chunk_bytes <= MAX_CHUNK_BYTES:
            raise BadInput(f"{self.path}: chunk_rows must be a positive integer with chunks under "
                           f"4 GiB ({width} values of {dtype} per row), got {chunk_rows!r}")
        self.width, self.dtype, self.chunk_rows = width, dtype, chunk_rows
        self.with_image_index = with_image_index
        self._pending: list[tuple[np.ndarray, np.ndarray | None]] = []
        self._pending_rows = 0
        self._journal: Journal | None = None
        if self.path.exists():
            self._open_finished()
            return
        settings = {"width": width, "dtype": dtype, "with_image_index": with_image_index}
        source = {"hsae_version": __version__, **check_attrs(attrs or {}, str(self.path))}
        self._journal = Journal(parts_folder(self.path), settings, source)
        self.rows_done = self._journal.rows
        self.images_done = self._journal.images
        self.finished = False

    def _open_finished(self) -> None:
        with ActivationStore(self.path) as store:
            if store.width != self.width:
                raise BadInput(f"{self.path}: a finished store of width {store.width} is already "
                               f"there, not width {self.width}; delete it or choose another path")
            self.rows_done = store.n_rows
            self.images_done = store.n_images or 0
        self.finished = True
        if parts_folder(self.path).exists():  # left behind by a writer killed inside finish()
            discard(parts_folder(self.path))

    def _writable(self) -> Journal:
        if self.finished:
            raise BadInput(f"{self.path}: the store is finished; appends are refused")
        if self._journal is None:
            raise ValueError(f"{self.path}: this StoreWriter was closed; open a new one to resume")
        return self._journal

    def append(self, activations: Any, image_index: Any = None) -> None:
        """Buffer ``activations`` (numpy or torch, shape (r, width)); with ``with_image_index``,
        ``image_index`` gives each row's image (an int for all rows, or shape (r,)), never
        decreasing and never adding to an image already committed."""
        self._writable()
        rows = as_numpy(activations)
        if rows.ndim != 2 or rows.shape[1] != self.width or rows.dtype.kind != "f":
            raise BadInput(f"{self.path}: append() got activations of shape {rows.shape} and dtype "
                           f"{rows.dtype} for dataset {ACTIVATIONS!r}; expected floats of shape "
                           f"(rows, {self.width})")
        with np.errstate(over="ignore"):  # an overflow to inf is reported just below
            rows = rows.astype(self.dtype)
        finite = np.isfinite(rows).all(axis=1)
        if not finite.all():
            row = self.rows_done + self._pending_rows + int(np.argmin(finite))
            raise BadInput(f"{self.path}: row {row} of dataset {ACTIVATIONS!r} is NaN or infinite "
                           f"(as {self.dtype})")
        index = self._checked_index(image_index, len(rows))
        if not len(rows):
            return
        self._pending.append((rows, index))
        self._pending_rows += len(rows)
        if self._pending_rows >= self.chunk_rows:
            self._commit(self._complete_rows())

    def _checked_index(self, image_index: Any, n_rows: int) -> np.ndarray | None:
        if not self.with_image_index:
            if image_index is not None:
                raise ValueError(f"{self.path}: image_index given, but the writer was opened "
                                 f"without with_image_index")
            return None
        if image_index is None:
            raise ValueError(f"{self.path}: append() needs image_index (with_image_index=True)")
        index = as_numpy(image_index)
        if index.ndim == 0:
            index = np.full(n_rows, index)
        if index.shape != (n_rows,) or index.dtype.kind not in "iu":
            raise BadInput(f"{self.path}: image_index for dataset {IMAGE_INDEX!r} must be integers "
                           f"of shape ({n_rows},), got shape {index.shape} and dtype {index.dtype}")
        index = index.astype(np.int64)
        floor = int(self._pending[-1][1][-1]) if self._pending else self.images_done
        if n_rows and (index[0] < floor or (np.diff(index) < 0).any()):
            raise BadInput(f"{self.path}: dataset {IMAGE_INDEX!r} must not decrease nor add rows "
                           f"to a committed image; the next row's image is {floor} or later, got "
                           f"{index.tolist()[:8]}")
        return index

    def _complete_rows(self) -> int:
        """How many buffered rows form complete units: all of them, or with ``image_index``
        those before the last buffered image, which may still grow."""
        if not self.with_image_index or not self._pending:
            return self._pending_rows
        last = self._pending[-1][1][-1]
        return sum(int(np.count_nonzero(index < last)) for _, index in self._pending)

    def _commit(self, n_rows: int) -> None:
        if n_rows == 0:
            return
        journal = self._writable()
        rows = np.concatenate([rows for rows, _ in self._pending])
        index = np.concatenate([index for _, index in self._pending]) if self.with_image_index else None
        images = int(index[n_rows - 1]) + 1 if index is not None else 0
        journal.commit(rows[:n_rows], None if index is None else index[:n_rows], images)
        self._pending = [(rows[n_rows:], None if index is None else index[n_rows:])] if len(rows) > n_rows else []
        self._pending_rows = len(rows) - n_rows
        self.rows_done, self.images_done = journal.rows, journal.images

    def commit(self) -> None:
        """Commit every buffered row now as one atomic unit (call it after an image's last row)."""
        self._writable()
        self._commit(self._pending_rows)

    def put(self, name: str, array: Any, attrs: dict | None = None) -> None:
        """Store a whole extra dataset such as ``embeddings``, ``image_ids`` or
        ``truth/leaf_dirs`` (replacing an earlier one of the same name)."""
        journal = self._writable()
        where = str(self.path)
        name = check_extra_name(name, where)
        for other, _ in journal.puts():
            if other.startswith(name + "/") or name.startswith(other + "/"):
                raise BadInput(f"{where}: dataset {name!r} and dataset {other!r} cannot both exist")
        journal.put(name, extra_array(name, array, where), check_attrs(attrs or {}, where))

    def finish(self) -> Path:
        """Commit the buffer, build the HDF5 file and rename it to ``path``; returns ``path``."""
        if self.finished:
            return self.path
        journal = self._writable()
        self._commit(self._pending_rows)
        assembly = journal.folder / ASSEMBLY
        self._assemble(journal, assembly)
        try:
            ActivationStore(assembly).close()
        except BadInput as error:
            raise BadInput(f"{self.path}: cannot finish, the store would be invalid: {error}") from None
        sync(assembly)
        os.replace(assembly, self.path)
        sync(self.path.parent)
        journal.remove()
        self._journal = None
        self.finished = True
        return self.path

    def _assemble(self, journal: Journal, target: Path) -> None:
        """Copy the committed rows and extra datasets into a new HDF5 file at ``target``."""
        n_rows = journal.rows
        chunk = max(1, min(self.chunk_rows, n_rows))
        with h5py.File(target, "w") as file:
            file.attrs[FORMAT_ATTR] = FORMAT_VERSION
            write_attrs(file, journal.state["attrs"])
            activations = file.create_dataset(ACTIVATIONS, shape=(n_rows, self.width),
                                              dtype=self.dtype, chunks=(chunk, self.width))
            index = (file.create_dataset(IMAGE_INDEX, shape=(n_rows,), dtype=np.int64, chunks=(chunk,))
                     if self.with_image_index else None)
            for start in range(0, n_rows, chunk):
                stop = min(start + chunk, n_rows)
                activations[start:stop] = journal.read_rows(start, stop)
                if index is not None:
                    index[start:stop] = journal.read_image_index(start, stop)
            for name, part in journal.puts():
                parent, _, leaf = name.rpartition("/")
                with h5py.File(part, "r") as source:
                    source.copy(source["data"], file.require_group(parent) if parent else file, name=leaf)

    def close(self) -> None:
        """Commit the complete units (without ``image_index``: all buffered rows; with it: the
        images before the last buffered one) and let go of the store, which stays resumable."""
        if self._journal is None:
            return
        try:
            self._commit(self._complete_rows())
        finally:
            self._journal.close()
            self._journal = None

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        if exc_type is None and self._journal is not None:
            self.finish()
        else:
            self.close()
