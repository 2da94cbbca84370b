"""Streaming per-image pooling (spec §7 inputs): equals a direct group-by, enforces contiguity, streams."""

from __future__ import annotations

import weakref

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.errors import BadInput
from hsae.metrics.pooling import pool_images


def _split(codes: torch.Tensor, index: np.ndarray, cuts: list[int]):
    edges = [0, *sorted(cuts), codes.shape[0]]
    return [(codes[a:b], index[a:b]) for a, b in zip(edges[:-1], edges[1:])]


def _collect(chunks, how):
    ids, values = [], []
    for chunk_ids, pooled in pool_images(chunks, how):
        ids.append(chunk_ids)
        values.append(pooled)
    return torch.cat(ids).tolist(), torch.cat(values)


@st.composite
def token_layouts(draw):
    runs = draw(st.lists(st.integers(1, 5), min_size=1, max_size=8))
    image_ids = draw(st.permutations(range(100)))[: len(runs)]
    width = draw(st.integers(1, 4))
    rows = sum(runs)
    cuts = draw(st.lists(st.integers(0, rows), max_size=5))
    seed = draw(st.integers(0, 2**31 - 1))
    return runs, list(image_ids), width, cuts, seed


@settings(max_examples=60, deadline=None)
@given(layout=token_layouts(), how=st.sampled_from(["mean", "max"]))
def test_streamed_pooling_equals_direct_group_reduce(layout, how):
    runs, image_ids, width, cuts, seed = layout
    codes = torch.randn(sum(runs), width, generator=torch.Generator().manual_seed(seed)).relu()
    index = np.repeat(np.asarray(image_ids, dtype=np.int64), runs)
    ids, pooled = _collect(_split(codes, index, cuts), how)
    assert ids == image_ids
    starts = np.cumsum([0, *runs])
    for row, (a, b) in enumerate(zip(starts[:-1], starts[1:])):
        expected = codes[a:b].mean(0) if how == "mean" else codes[a:b].amax(0)
        torch.testing.assert_close(pooled[row], expected)


@settings(max_examples=40, deadline=None)
@given(cuts=st.lists(st.integers(0, 6), max_size=4))
def test_reappearing_image_is_rejected_with_its_id_and_row(cuts):
    index = np.array([4, 4, 9, 9, 4, 2], dtype=np.int64)
    codes = torch.ones(6, 2)
    with pytest.raises(BadInput, match=r"image id 4 reappears at row 4"):
        _collect(_split(codes, index, cuts), "mean")


def test_image_repeated_inside_one_chunk_after_the_open_image_is_rejected():
    chunks = [(torch.ones(2, 1), np.array([1, 2])), (torch.ones(3, 1), np.array([2, 3, 2]))]
    with pytest.raises(BadInput, match=r"image id 2 reappears at row 4"):
        _collect(chunks, "max")


class _TrackedChunks:
    """Yields chunks built on demand and records how many earlier chunks are still alive."""

    def __init__(self, n_chunks: int, rows: int, width: int) -> None:
        self.n_chunks, self.rows, self.width = n_chunks, rows, width
        self.pulled = 0
        self.most_alive_before = 0
        self._refs: list[weakref.ref] = []

    def __iter__(self):
        for chunk_no in range(self.n_chunks):
            alive = sum(ref() is not None for ref in self._refs)
            self.most_alive_before = max(self.most_alive_before, alive)
            codes = torch.full((self.rows, self.width), float(chunk_no))
            self._refs.append(weakref.ref(codes))
            # images of 3 rows each, so most images straddle a chunk boundary (rows = 4)
            first_row = chunk_no * self.rows
            self.pulled += 1
            yield codes, torch.arange(first_row, first_row + self.rows) // 3
            del codes


def test_pooling_streams_and_keeps_no_chunk_alive():
    source = _TrackedChunks(n_chunks=12, rows=4, width=3)
    outputs = pool_images(source, "mean")
    first_ids, _ = next(outputs)
    assert source.pulled == 1 and first_ids.tolist() == [0]
    rest = list(outputs)
    # while a chunk is made, only the previous one (still bound in the consumer's loop) may live
    assert source.most_alive_before <= 1
    ids = torch.cat([first_ids, *(i for i, _ in rest)]).tolist()
    assert ids == list(range(16))


def test_pooling_keeps_float64_and_promotes_low_precision_codes():
    index = np.array([0, 0, 1])
    _, pooled64 = _collect([(torch.ones(3, 2, dtype=torch.float64), index)], "mean")
    _, pooled16 = _collect([(torch.ones(3, 2, dtype=torch.bfloat16), index)], "max")
    assert pooled64.dtype == torch.float64 and pooled16.dtype == torch.float32


@pytest.mark.parametrize(
    ("chunks", "how", "message"),
    [
        ([(torch.ones(2, 1), np.array([0, 0]))], "median", "how must be one of"),
        ([(torch.ones(2, 1), np.array([0.0, 0.0]))], "mean", "must hold integers"),
        ([(torch.ones(2, 1), np.array([0, 0, 1]))], "mean", r"shape \(2,\)"),
        ([(torch.ones(2), np.array([0, 0]))], "mean", "2-D tensor"),
        ([(torch.ones(2, 1), np.array([0, 0])), (torch.ones(2, 3), np.array([1, 1]))], "mean", "earlier chunks had 1"),
    ],
)
def test_bad_pooling_input_is_named(chunks, how, message):
    with pytest.raises(BadInput, match=message):
        _collect(chunks, how)
