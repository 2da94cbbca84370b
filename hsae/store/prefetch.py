"""Reading store batches ahead in a background thread, so a training step never waits on HDF5.

The thread runs the batch iterator (e.g. ``ActivationStore.batches``) up to ``depth`` batches
ahead of the consumer; with ``pin_memory`` each batch is copied into page-locked memory, so that
``batch.to("cuda", non_blocking=True)`` overlaps the copy with compute. The batches and their
order are exactly the iterator's. An exception raised while reading is raised again by ``next``.
"""

from __future__ import annotations

import queue
import threading
from typing import Iterator

import torch

_END = object()


class _Failure:
    def __init__(self, error: BaseException):
        self.error = error


class Prefetcher:
    """An iterator over ``source``'s batches, read ``depth`` ahead in a daemon thread. Use it as a
    context manager (or call :meth:`close`) to stop the thread early."""

    def __init__(self, source: Iterator[torch.Tensor], depth: int = 2, pin_memory: bool = False):
        if depth < 1:
            raise ValueError(f"prefetch depth must be at least 1, got {depth}")
        self._source = source
        self._pin = pin_memory
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._done = False
        self._thread = threading.Thread(target=self._fill, name="hsae-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item) -> bool:
        """Queue ``item`` unless asked to stop first; whether it was queued."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _fill(self) -> None:
        try:
            for batch in self._source:
                if not self._put(batch.pin_memory() if self._pin else batch):
                    return
            self._put(_END)
        except BaseException as error:  # handed to the consumer, which raises it
            self._put(_Failure(error))
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def __iter__(self) -> Prefetcher:
        return self

    def __next__(self) -> torch.Tensor:
        if self._done:
            raise StopIteration
        item = self._queue.get()
        if item is _END or isinstance(item, _Failure):
            self._done = True
            self.close()
            if isinstance(item, _Failure):
                raise item.error
            raise StopIteration
        return item

    def close(self) -> None:
        """Stop the thread and wait for it (it finishes the batch it is reading)."""
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.05)
            except queue.Empty:
                pass
        self._done = True

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
