"""A slow, deterministic store writer that test_store_crash.py kills with SIGKILL and reruns.

Usage: ``python store_kill_target.py PATH PAUSE_SECONDS [POINT CALL]``. Image ``i`` has its
own rows (seeded by ``i``), appended in two halves with a pause between them and committed
after the second, so a kill can land inside an image. Prints ``resume ROWS IMAGES`` on start,
then the number of each committed image, then ``finishing`` and ``done``. With ``POINT CALL``
the writer SIGKILLs itself at the CALL-th call of the function named by ``KILL_POINTS[POINT]``.
"""

import itertools
import os
import signal
import sys
import time

import numpy as np

from hsae.store import StoreWriter, journal

N_IMAGES = 60
WIDTH = 48
ATTRS = {"model": "kill-target", "layer": 7, "pooling": None, "sizes": [1, 2, 3]}


KILL_POINTS = {
    "state": (journal, "_replace_atomically"),  # the logs hold a commit, state.json not yet
    "assembly": (journal.Journal, "read_rows"),  # the final file is half built
    "cleanup": (journal.Journal, "remove"),  # the final file is in place, the parts folder too
}


def die_at_call(point: str, call: int) -> None:
    owner, name = KILL_POINTS[point]
    original, calls = getattr(owner, name), itertools.count(1)

    def wrapper(*args, **kwargs):
        if next(calls) == call:
            os.kill(os.getpid(), signal.SIGKILL)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def image_rows(image: int) -> np.ndarray:
    return np.random.default_rng(image).standard_normal((1 + 7 * (image % 5), WIDTH)).astype(np.float32)


def main(path: str, pause: float) -> None:
    with StoreWriter(path, width=WIDTH, chunk_rows=8, attrs=ATTRS, with_image_index=True) as writer:
        print("resume", writer.rows_done, writer.images_done, flush=True)
        if not writer.finished:
            write(writer, pause)
    print("done", flush=True)


def write(writer: StoreWriter, pause: float) -> None:
    writer.put("embeddings", np.random.default_rng(12345).standard_normal((N_IMAGES, 5)))
    for image in range(writer.images_done, N_IMAGES):
        rows = image_rows(image)
        writer.append(rows[: len(rows) // 2], image_index=image)
        time.sleep(pause)
        writer.append(rows[len(rows) // 2:], image_index=image)
        writer.commit()
        print(image, flush=True)
        time.sleep(pause)
    writer.put("truth/order", np.arange(N_IMAGES), attrs={"note": "kept"})
    print("finishing", flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 3:
        die_at_call(sys.argv[3], int(sys.argv[4]))
    main(sys.argv[1], float(sys.argv[2]))
