"""Prefetcher: the source's batches in order, its errors raised again, and a clean stop."""

from __future__ import annotations

import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.store.prefetch import Prefetcher


@settings(max_examples=20, deadline=None)
@given(n=st.integers(0, 20), depth=st.integers(1, 4))
def test_batches_come_in_the_source_order(n, depth):
    batches = [torch.full((2, 3), float(i)) for i in range(n)]
    with Prefetcher(iter(batches), depth) as ahead:
        got = list(ahead)
    assert len(got) == n and all(torch.equal(a, b) for a, b in zip(got, batches))


def test_an_error_while_reading_is_raised_by_next():
    def source():
        yield torch.zeros(1)
        raise OSError("disk gone")

    ahead = Prefetcher(source(), 2)
    assert torch.equal(next(ahead), torch.zeros(1))
    with pytest.raises(OSError, match="disk gone"):
        next(ahead)
    with pytest.raises(StopIteration):
        next(ahead)


def test_close_stops_an_endless_source_and_closes_it():
    closed = threading.Event()

    def endless():
        try:
            while True:
                yield torch.zeros(1)
        finally:
            closed.set()

    ahead = Prefetcher(endless(), 3)
    next(ahead)
    ahead.close()
    assert not ahead._thread.is_alive() and closed.is_set()
    with pytest.raises(StopIteration):
        next(ahead)


def test_depth_must_be_positive():
    with pytest.raises(ValueError, match="at least 1"):
        Prefetcher(iter([]), 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="pinned memory needs CUDA")
def test_pinned_batches():
    with Prefetcher(iter([torch.zeros(4)]), 1, pin_memory=True) as ahead:
        assert next(ahead).is_pinned()
