"""The crash-safe journal of an unfinished store: the folder ``<store>.parts/``.

Committed rows are appended to raw little-endian logs (``activations.bin``, and
``image_index.bin`` as int64); only then is ``state.json``, which holds the committed row
count, replaced by an atomic rename. A process killed at any moment therefore leaves logs at
least as long as ``state.json`` says, and reopening truncates them back to it: a commit is
all there or not there. An extra dataset is a whole HDF5 file renamed into place. Why the
rows are not written into an HDF5 file directly: ``docs/formats.md`` § Activation store.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from pathlib import Path
from typing import Any, TextIO

import h5py
import numpy as np

from hsae.errors import BadInput
from hsae.store.layout import write_attrs

STATE = "state.json"
ACTIVATION_LOG = "activations.bin"
INDEX_LOG = "image_index.bin"
LOCK = "lock"
PUT_PREFIX = "put-"
TMP_SUFFIX = ".tmp"
SETTINGS = ("width", "dtype", "with_image_index")
INDEX_DTYPE = np.dtype("<i8")


def _lock(folder: Path) -> TextIO:
    """Hold an exclusive lock on ``folder`` (released when the process dies, even by SIGKILL)."""
    handle = open(folder / LOCK, "a")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise BadInput(f"{folder}: another StoreWriter is writing this store now") from None
    return handle


def _replace_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` so that a reader sees either the old or the new content."""
    tmp = path.with_name(path.name + TMP_SUFFIX)
    tmp.write_text(text)
    os.replace(tmp, path)


def discard(folder: Path) -> None:
    """Remove a journal left over after its store was finished, unless a writer holds it."""
    try:
        lock = _lock(folder)
    except BadInput:
        return
    with lock:
        shutil.rmtree(folder)


def _append(log, array: np.ndarray) -> None:
    """Write all of ``array``'s bytes to the unbuffered ``log`` (a raw write may take part of them)."""
    view = memoryview(array).cast("B")
    while view:
        view = view[log.write(view):]


class Journal:
    """An open, locked ``<store>.parts/`` folder.

    ``settings`` (width, dtype, with_image_index) must equal those the folder was started
    with; ``attrs``, when given, are merged over the stored source attributes."""

    def __init__(self, folder: Path, settings: dict[str, Any], attrs: dict[str, Any] | None):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(folder)
        try:
            self.state = self._load_or_start(settings, attrs)
            self.dtype = np.dtype(settings["dtype"]).newbyteorder("<")
            self.width = settings["width"]
            self._logs = {ACTIVATION_LOG: self._open_log(ACTIVATION_LOG, self.width * self.dtype.itemsize)}
            if settings["with_image_index"]:
                self._logs[INDEX_LOG] = self._open_log(INDEX_LOG, INDEX_DTYPE.itemsize)
        except BaseException:
            self._lock.close()
            raise

    @property
    def rows(self) -> int:
        return self.state["rows"]

    @property
    def images(self) -> int:
        return self.state["images"]

    def _load_or_start(self, settings: dict[str, Any], attrs: dict[str, Any] | None) -> dict[str, Any]:
        for stale in self.folder.glob("*" + TMP_SUFFIX):
            stale.unlink()
        path = self.folder / STATE
        if not path.exists():
            state = {**settings, "attrs": attrs or {}, "rows": 0, "images": 0}
            _replace_atomically(path, json.dumps(state))
            return state
        try:
            state = json.loads(path.read_text())
            stored = {key: state[key] for key in (*SETTINGS, "attrs", "rows", "images")}
        except (ValueError, KeyError, TypeError) as error:
            raise BadInput(f"{path}: not the state of an unfinished activation store ({error}); "
                           f"delete {self.folder} to start again") from None
        for key in SETTINGS:
            if stored[key] != settings[key]:
                raise BadInput(f"{self.folder}: this unfinished store was started with "
                               f"{key}={stored[key]!r}, not {settings[key]!r}; resume it with the "
                               f"same {key} or delete {self.folder} to start again")
        if attrs is not None and {**state["attrs"], **attrs} != state["attrs"]:
            state["attrs"] = {**state["attrs"], **attrs}
            _replace_atomically(path, json.dumps(state))
        return state

    def _open_log(self, name: str, row_bytes: int):
        """Open a log for appending after cutting off whatever follows the committed rows."""
        path = self.folder / name
        committed = self.rows * row_bytes
        if (path.stat().st_size if path.exists() else 0) < committed:
            raise BadInput(f"{path}: shorter than the {self.rows} committed rows in {STATE} (the "
                           f"machine crashed before the data reached the disk); delete "
                           f"{self.folder} and write the store again")
        with open(path, "ab") as log:
            log.truncate(committed)
        return open(path, "ab", buffering=0)  # unbuffered: nothing of a failed commit is written later

    def _row_bytes(self, name: str) -> int:
        return self.width * self.dtype.itemsize if name == ACTIVATION_LOG else INDEX_DTYPE.itemsize

    def commit(self, rows: np.ndarray, image_index: np.ndarray | None, images: int) -> None:
        """Append ``rows`` (and their ``image_index``) as one unit; ``images`` is the new count
        of complete images. A commit that fails (a full disk) cuts the logs back to the rows
        committed before it, so the journal stays as it was and a later commit follows them."""
        try:
            _append(self._logs[ACTIVATION_LOG], np.ascontiguousarray(rows, dtype=self.dtype))
            if image_index is not None:
                _append(self._logs[INDEX_LOG], np.ascontiguousarray(image_index, dtype=INDEX_DTYPE))
            state = {**self.state, "rows": self.rows + len(rows), "images": images}
            _replace_atomically(self.folder / STATE, json.dumps(state))
        except BaseException:
            for name, log in self._logs.items():
                os.ftruncate(log.fileno(), self.rows * self._row_bytes(name))
            raise
        self.state = state

    def put(self, name: str, data: np.ndarray, attrs: dict[str, Any]) -> None:
        """Store the whole dataset ``name`` (replacing an earlier one of that name)."""
        path = self.folder / f"{PUT_PREFIX}{name.encode().hex()}.h5"
        tmp = path.with_name(path.name + TMP_SUFFIX)
        with h5py.File(tmp, "w") as file:
            write_attrs(file.create_dataset("data", data=data), attrs)
        os.replace(tmp, path)

    def puts(self) -> list[tuple[str, Path]]:
        """The extra datasets stored so far: (name, HDF5 file holding it as ``data``)."""
        found = [(bytes.fromhex(path.stem[len(PUT_PREFIX):]).decode(), path)
                 for path in self.folder.glob(f"{PUT_PREFIX}*.h5")]
        return sorted(found)

    def read_rows(self, start: int, stop: int) -> np.ndarray:
        """Committed activation rows ``[start, stop)``."""
        count = (stop - start) * self.width
        return np.fromfile(self.folder / ACTIVATION_LOG, dtype=self.dtype, count=count,
                           offset=start * self.width * self.dtype.itemsize).reshape(-1, self.width)

    def read_image_index(self, start: int, stop: int) -> np.ndarray:
        """Committed image indices ``[start, stop)``."""
        return np.fromfile(self.folder / INDEX_LOG, dtype=INDEX_DTYPE, count=stop - start,
                           offset=start * INDEX_DTYPE.itemsize)

    def close(self) -> None:
        """Close the logs and release the lock; the folder stays, resumable."""
        for log in self._logs.values():
            log.close()
        self._lock.close()

    def remove(self) -> None:
        """Close and delete the folder (after its store was finished)."""
        self.close()
        shutil.rmtree(self.folder)
