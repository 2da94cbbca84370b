"""ActivationStore.batches and its plan: every epoch a permutation, deterministic in the seed,
resumable at any step without reading what comes before, reads in block slabs."""

import re
from itertools import islice

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae.errors import BadInput
from hsae.store import ActivationStore
from hsae.store.shuffle import ShufflePlan

N_ROWS, WIDTH = 203, 4
BLOCK_ROWS, WINDOW_ROWS = 8, 24  # with the byte sizes below: 3 blocks per window, 9 windows


def numbered_rows(n_rows: int) -> np.ndarray:
    """Rows whose first value is the row number."""
    rows = np.random.default_rng(0).standard_normal((n_rows, WIDTH)).astype(np.float32)
    rows[:, 0] = np.arange(n_rows)
    return rows


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    monkeypatch.setattr("hsae.store.shuffle.BLOCK_BYTES", BLOCK_ROWS * WIDTH * 4)
    monkeypatch.setattr("hsae.store.shuffle.WINDOW_BYTES", WINDOW_ROWS * WIDTH * 4)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("batches") / "store.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("activations", data=numbered_rows(N_ROWS), chunks=(16, WIDTH))
    return path


def row_numbers(batches) -> list[int]:
    return [int(value) for batch in batches for value in batch[:, 0]]


@settings(max_examples=60, deadline=None)
@given(n_rows=st.integers(1, 60), block_rows=st.integers(1, 9), blocks_per_window=st.integers(1, 4),
       seed=st.integers(0, 2**32), start=st.integers(0, 150))
def test_plan_epochs_are_permutations_and_any_start_is_a_suffix(n_rows, block_rows, blocks_per_window,
                                                                 seed, start):
    plan = ShufflePlan(n_rows, block_rows, blocks_per_window, seed)

    def stream(first_row: int, length: int) -> list[int]:
        rows = []
        for window in plan.windows(first_row):
            window_rows = np.concatenate([np.arange(a, b) for a, b in window.ranges])
            assert all(b - a <= block_rows for a, b in window.ranges)
            rows.extend(window_rows[window.order[window.skip:]].tolist())
            if len(rows) >= length:
                return rows[:length]

    full = stream(0, start + 2 * n_rows)
    assert sorted(full[:n_rows]) == list(range(n_rows))
    assert sorted(full[n_rows:2 * n_rows]) == list(range(n_rows))
    assert stream(start, 2 * n_rows) == full[start:]


@settings(max_examples=30, deadline=None)
@given(batch_size=st.integers(1, 70), start_step=st.integers(0, 12), seed=st.integers(0, 5))
def test_start_step_gives_the_later_batches_of_a_fresh_stream(store_path, batch_size, start_step, seed):
    with ActivationStore(store_path) as store:
        fresh = list(islice(store.batches(batch_size, seed), start_step + 3))
        resumed = list(islice(store.batches(batch_size, seed, start_step=start_step), 3))
    for expected, found in zip(fresh[start_step:], resumed, strict=True):
        assert torch.equal(expected, found)


def test_batches_cover_each_epoch_once_deterministically(store_path):
    with ActivationStore(store_path) as store:
        batches = list(islice(store.batches(29, seed=3), 14))  # 2 epochs of 203 = 7 · 29 rows
        again = list(islice(store.batches(29, seed=3), 14))
        other = list(islice(store.batches(29, seed=4), 7))
    assert all(batch.dtype == torch.float32 and batch.shape == (29, WIDTH) for batch in batches)
    assert all(torch.equal(a, b) for a, b in zip(batches, again))
    numbers = row_numbers(batches)
    assert sorted(numbers[:N_ROWS]) == sorted(numbers[N_ROWS:]) == list(range(N_ROWS))
    assert numbers[:N_ROWS] != numbers[N_ROWS:] and numbers[:N_ROWS] != row_numbers(other)
    rows = numbered_rows(N_ROWS)
    np.testing.assert_array_equal(torch.cat(batches).numpy(), rows[numbers])


def test_rows_are_spread_over_the_store(store_path):
    """A batch mixes rows from several blocks far apart, not one contiguous run."""
    with ActivationStore(store_path) as store:
        batch = next(store.batches(24, seed=0))
    blocks = set(row_numbers([batch])[i] // BLOCK_ROWS for i in range(24))
    assert len(blocks) == 3 and max(blocks) - min(blocks) > 3


def test_reads_are_block_slabs_and_skipped_data_is_not_read(store_path, monkeypatch):
    reads = []
    original = ActivationStore._read_into
    monkeypatch.setattr(ActivationStore, "_read_into",
                        lambda self, out, start, stop: (reads.append((start, stop)), original(self, out, start, stop)))
    with ActivationStore(store_path) as store:
        next(store.batches(10, seed=1, start_step=35))  # row 350 of the stream: epoch 1
    assert 1 <= len(reads) <= WINDOW_ROWS // BLOCK_ROWS
    assert all(stop - start <= BLOCK_ROWS and start % BLOCK_ROWS == 0 for start, stop in reads)


def test_float16_store_gives_float32_batches(tmp_path):
    path = tmp_path / "half.h5"
    rows = numbered_rows(40)
    rows[:, 1:] = rows[:, 1:].astype(np.float16)
    with h5py.File(path, "w") as file:
        file.create_dataset("activations", data=rows.astype(np.float16))
    with ActivationStore(path) as store:
        batch = next(store.batches(40, seed=0))
    assert batch.dtype == torch.float32
    np.testing.assert_array_equal(batch.numpy(), rows[row_numbers([batch])])


def test_compressed_store_is_read_by_whole_chunks(tmp_path, monkeypatch):
    path = tmp_path / "gzip.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("activations", data=numbered_rows(50), chunks=(5, WIDTH), compression="gzip")
    reads = []
    original = ActivationStore._read_into
    monkeypatch.setattr(ActivationStore, "_read_into",
                        lambda self, out, start, stop: (reads.append((start, stop)), original(self, out, start, stop)))
    with ActivationStore(path) as store:
        numbers = row_numbers(islice(store.batches(10, seed=0), 5))
    assert sorted(numbers) == list(range(50))
    assert all(stop - start == 5 and start % 5 == 0 for start, stop in reads)


def test_non_finite_block_names_file_dataset_and_rows(tmp_path):
    path = tmp_path / "nan.h5"
    rows = numbered_rows(40)
    rows[21, 3] = np.nan
    with h5py.File(path, "w") as file:
        file.create_dataset("activations", data=rows)
    with ActivationStore(path) as store, pytest.raises(
            BadInput, match=f"{re.escape(str(path))}: dataset 'activations' .* rows 16..23, first in row 21"):
        next(store.batches(40, seed=0))


def test_empty_store_has_no_batches(tmp_path):
    path = tmp_path / "empty.h5"
    with h5py.File(path, "w") as file:
        file.create_dataset("activations", shape=(0, WIDTH), dtype=np.float32)
    with ActivationStore(path) as store, pytest.raises(BadInput, match="no rows"):
        next(store.batches(4, seed=0))
