"""The output folder of ``hsae run`` (``--out``): checked, created, and held by one run at a time.

:func:`holding` makes the folder (``BadInput`` naming the path when it is a file, lies under a
file, or cannot be created) and takes an exclusive ``flock`` on ``<out>/.lock``, which it keeps
until the run ends. The operating system releases the lock when the process dies, SIGKILL
included, so a killed run never blocks the next one; a second run on a held folder is refused at
once, naming the holder's process id. :func:`clear` empties a held folder for ``--fresh``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path
from typing import Iterator

from hsae.errors import BadInput

LOCK_NAME = ".lock"


def prepare(root: Path, option: str = "--out") -> None:
    """Create the folder ``root``; ``BadInput`` naming ``option`` when that is impossible."""
    for path in (root, *root.parents):
        if path.exists() and not path.is_dir():
            where = "is a file" if path == root else f"lies under {path}, which is a file"
            raise BadInput(f"{option} {root} {where}; give the path of a folder")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"{option} {root}: cannot create the folder ({exc.strerror or exc}); "
                       "give a folder you can write") from None


@contextlib.contextmanager
def holding(root: Path, option: str = "--out") -> Iterator[None]:
    """Hold ``root`` (created if needed) for this process while inside."""
    prepare(root, option)
    try:
        fd = os.open(root / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise BadInput(f"{option} {root}: cannot write in the folder ({exc.strerror or exc})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
            raise BadInput(f"{option} {root} is in use by another hsae run (process {holder}); wait for it "
                           "to end, or give another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock; the file stays (removing it would race a waiting run)


def clear(root: Path) -> None:
    """Remove everything in the held folder ``root`` but its lock file."""
    for entry in root.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()
