"""The order in which ``ActivationStore.batches`` visits rows: index arithmetic, no data.

Rows are cut into blocks of ``block_rows`` consecutive rows (each one contiguous read).
Epoch ``e`` permutes the blocks with a generator seeded by ``(seed, e)`` and groups them, in
that order, into windows of ``blocks_per_window`` blocks. A window's rows (its blocks
concatenated in ascending row order) are permuted by a generator seeded by
``(seed, e, window)``. The stream is the permuted windows of epochs 0, 1, 2, … one after
another; batch ``s`` is its rows ``[s·batch_size, (s+1)·batch_size)``. Every epoch visits
every row exactly once, and the stream from any row on is computed without the rows before.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numpy as np

BLOCK_BYTES = 1 << 20  # one contiguous read (as stored)
WINDOW_BYTES = 64 << 20  # the rows shuffled together (as float32): the memory bound


@dataclass(frozen=True)
class Window:
    """Rows read and shuffled together: ``ranges`` are the row ranges ``[start, stop)`` of its
    blocks in ascending order, ``order`` permutes their concatenation, and the first
    ``skip`` rows of that order precede the start of the stream."""

    ranges: list[tuple[int, int]]
    order: np.ndarray
    skip: int


@dataclass(frozen=True)
class ShufflePlan:
    """The shuffled order of ``n_rows`` rows for one seed (see the module docstring)."""

    n_rows: int
    block_rows: int
    blocks_per_window: int
    seed: int

    @classmethod
    def for_rows(cls, n_rows: int, width: int, itemsize: int, seed: int,
                 chunk_rows: int | None = None) -> ShufflePlan:
        """The plan for rows of ``width`` values of ``itemsize`` bytes: blocks of about
        ``BLOCK_BYTES`` (or of ``chunk_rows`` rows, for compressed data read by whole chunks),
        windows of about ``WINDOW_BYTES`` once read as float32."""
        block_rows = chunk_rows or max(1, BLOCK_BYTES // (width * itemsize))
        blocks_per_window = max(1, WINDOW_BYTES // (block_rows * width * 4))
        return cls(n_rows, block_rows, blocks_per_window, seed)

    def _windows_of_epoch(self, epoch: int) -> tuple[list[np.ndarray], np.ndarray]:
        """The block ids of each window of ``epoch`` and each window's row count."""
        n_blocks = -(-self.n_rows // self.block_rows)
        block_lengths = np.full(n_blocks, self.block_rows, dtype=np.int64)
        block_lengths[-1] = self.n_rows - (n_blocks - 1) * self.block_rows
        blocks = np.random.default_rng([self.seed, epoch, 0]).permutation(n_blocks)
        starts = np.arange(0, n_blocks, self.blocks_per_window)
        return np.split(blocks, starts[1:]), np.add.reduceat(block_lengths[blocks], starts)

    def windows(self, start_row: int) -> Iterator[Window]:
        """The endless sequence of windows, from the one holding stream position ``start_row``."""
        epoch, offset = divmod(start_row, self.n_rows)
        while True:
            groups, lengths = self._windows_of_epoch(epoch)
            ends = np.cumsum(lengths)
            first = int(np.searchsorted(ends, offset, side="right"))
            for window in range(first, len(groups)):
                blocks = np.sort(groups[window]) * self.block_rows
                ranges = [(int(start), min(int(start) + self.block_rows, self.n_rows)) for start in blocks]
                order = np.random.default_rng([self.seed, epoch, 1, window]).permutation(lengths[window])
                skip = offset - int(ends[window] - lengths[window]) if window == first else 0
                yield Window(ranges, order, skip)
            epoch, offset = epoch + 1, 0
