"""ActivationStore: users' own files open, bad files are refused naming file and dataset."""

import re

import h5py
import numpy as np
import pytest

from hsae.errors import BadInput
from hsae.store import ActivationStore, StoreWriter


def user_file(path, **datasets) -> None:
    """An HDF5 file made with plain h5py, as a user would."""
    with h5py.File(path, "w") as file:
        for name, data in datasets.items():
            file.create_dataset(name, data=data)


def test_user_file_with_only_activations_is_a_complete_store(tmp_path):
    path = tmp_path / "mine.h5"
    data = np.random.default_rng(0).standard_normal((37, 5)).astype(np.float32)
    user_file(path, activations=data)
    with h5py.File(path, "a") as file:
        file.attrs["layer"] = np.int64(3)
        file.attrs["model"] = np.bytes_(b"my-model")
        file.attrs["shape"] = np.array([1, 2])
    with ActivationStore(path) as store:
        assert (store.n_rows, store.width, store.dtype) == (37, 5, "float32")
        assert store.attrs == {"layer": 3, "model": "my-model", "shape": [1, 2]}
        assert store.n_images is None and store.image_index() is None
        np.testing.assert_array_equal(store.rows(3, 9), data[3:9])
        chunks = list(store.iter_chunks(10))
        assert [start for start, _ in chunks] == [0, 10, 20, 30]
        np.testing.assert_array_equal(np.concatenate([rows for _, rows in chunks]), data)
        store.check_width(5)
        store.check_finite()
        assert store.read("activations").shape == (37, 5)


def test_float16_rows_read_as_float32(tmp_path):
    path = tmp_path / "half.h5"
    data = np.random.default_rng(0).standard_normal((8, 3)).astype(np.float16)
    user_file(path, activations=data)
    with ActivationStore(path) as store:
        rows = store.rows(0, 8)
        assert rows.dtype == np.float32 and store.dtype == "float16"
        np.testing.assert_array_equal(rows, data.astype(np.float32))


def test_user_image_index_embeddings_and_ids(tmp_path):
    path = tmp_path / "mine.h5"
    user_file(path, activations=np.zeros((5, 2), np.float32), image_index=np.array([0, 0, 1, 3, 3]),
              embeddings=np.zeros((4, 7)), image_ids=np.array([b"a", b"b", b"c", b"d"]))
    with ActivationStore(path) as store:
        assert store.n_images == 4
        np.testing.assert_array_equal(store.image_index(), [0, 0, 1, 3, 3])
        assert store.read("image_ids").tolist() == ["a", "b", "c", "d"]


def message_for(path) -> str:
    with pytest.raises(BadInput) as raised:
        ActivationStore(path)
    return str(raised.value)


def test_missing_file(tmp_path):
    message = message_for(tmp_path / "nothing.h5")
    assert str(tmp_path / "nothing.h5") in message and "no such file" in message
    assert "'activations'" in message


def test_not_an_hdf5_file(tmp_path):
    path = tmp_path / "text.h5"
    path.write_text("activations,1,2,3\n")
    message = message_for(path)
    assert str(path) in message and "not an HDF5 file" in message and "'activations'" in message


def test_missing_activations(tmp_path):
    path = tmp_path / "other.h5"
    user_file(path, features=np.zeros((3, 3)))
    assert re.search(f"{re.escape(str(path))}: no dataset 'activations'", message_for(path))


@pytest.mark.parametrize("data, expected", [
    (np.zeros(4, np.float32), r"'activations' has shape \(4,\); expected \(N, d\)"),
    (np.zeros((2, 2, 2), np.float32), r"'activations' has shape \(2, 2, 2\)"),
    (np.zeros((4, 0), np.float32), r"'activations' has shape \(4, 0\)"),
    (np.zeros((4, 3), np.int64), "'activations' has dtype int64; expected float16 or float32"),
])
def test_bad_activations(tmp_path, data, expected):
    path = tmp_path / "bad.h5"
    user_file(path, activations=data)
    message = message_for(path)
    assert str(path) in message and re.search(expected, message)


@pytest.mark.parametrize("extra, expected", [
    ({"image_index": np.zeros(3, np.int64)}, r"'image_index' has shape \(3,\).*expected integers of shape \(4,\)"),
    ({"image_index": np.zeros(4)}, "'image_index' has shape .* dtype float64"),
    ({"image_index": np.array([-1, 0, 0, 1])}, "'image_index' starts at -1"),
    ({"image_index": np.arange(4), "embeddings": np.zeros((3, 2))},
     "'image_index' reaches image 3, but dataset 'embeddings' lists 3"),
    ({"embeddings": np.zeros(4)}, "'embeddings' has shape"),
    ({"image_ids": np.arange(4)}, "'image_ids' has shape .* expected strings"),
    ({"image_ids": np.array([b"a"]), "embeddings": np.zeros((2, 2))}, "2 rows but dataset 'image_ids' has 1"),
])
def test_inconsistent_image_datasets(tmp_path, extra, expected):
    path = tmp_path / "bad.h5"
    user_file(path, activations=np.zeros((4, 2), np.float32), **extra)
    message = message_for(path)
    assert str(path) in message and re.search(expected, message)


def test_image_index_must_not_decrease(tmp_path):
    path = tmp_path / "bad.h5"
    user_file(path, activations=np.zeros((4, 2), np.float32), image_index=np.array([0, 2, 1, 3]))
    with ActivationStore(path) as store, pytest.raises(BadInput, match="'image_index'.*row 2 breaks"):
        store.image_index()


def test_unfinished_store_asks_to_resume_the_writer(tmp_path):
    path = tmp_path / "store.h5"
    writer = StoreWriter(path, width=3)
    writer.append(np.zeros((2, 3)))
    writer.close()
    message = message_for(path)
    assert str(path) in message and "unfinished" in message and "resume the writer" in message


def test_check_width_names_file_dataset_and_widths(tmp_path):
    path = tmp_path / "mine.h5"
    user_file(path, activations=np.zeros((2, 5), np.float32))
    with ActivationStore(path) as store, pytest.raises(
            BadInput, match=f"{re.escape(str(path))}: dataset 'activations' has width 5, expected 8"):
        store.check_width(8)


@pytest.mark.parametrize("bad_value", [np.nan, np.inf, -np.inf])
def test_check_finite_names_the_first_bad_row(tmp_path, monkeypatch, bad_value):
    monkeypatch.setattr("hsae.store.shuffle.WINDOW_BYTES", 10 * 4 * 4)  # pieces of 10 rows
    path = tmp_path / "mine.h5"
    data = np.zeros((30, 4), np.float32)
    data[[17, 23], 2] = bad_value
    user_file(path, activations=data)
    with ActivationStore(path) as store, pytest.raises(
            BadInput, match=f"{re.escape(str(path))}: dataset 'activations' .* rows 10..19, first in row 17"):
        store.check_finite()


def test_reading_a_missing_dataset(tmp_path):
    path = tmp_path / "mine.h5"
    user_file(path, activations=np.zeros((2, 5), np.float32))
    with ActivationStore(path) as store:
        assert not store.has("embeddings")
        with pytest.raises(BadInput, match=f"{re.escape(str(path))}: no dataset 'embeddings'"):
            store.read("embeddings")
        with pytest.raises(ValueError):
            store.rows(1, 3)
