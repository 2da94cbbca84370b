"""StoreWriter: round trips, resuming, refusals, and the states a killed writer can leave."""

import re

import h5py
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from hsae import __version__
from hsae.errors import BadInput
from hsae.store import ActivationStore, StoreWriter
from hsae.store.journal import ACTIVATION_LOG, STATE
from hsae.store.layout import parts_folder
from hsae.store.writer import ASSEMBLY

WIDTH = 6


def image_rows(image: int, n_rows: int) -> np.ndarray:
    """Rows whose first value names the image and the row within it."""
    rows = np.random.default_rng(image).standard_normal((n_rows, WIDTH)).astype(np.float32)
    rows[:, 0] = image * 1000 + np.arange(n_rows)
    return rows


def write_images(writer: StoreWriter, sizes: list[int]) -> None:
    for image in range(writer.images_done, len(sizes)):
        writer.append(image_rows(image, sizes[image]), image_index=image)
        writer.commit()


def reference_rows(sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    rows = np.concatenate([image_rows(image, n) for image, n in enumerate(sizes)])
    index = np.repeat(np.arange(len(sizes)), sizes)
    return rows, index


def test_round_trip_of_rows_index_attrs_and_extras(tmp_path):
    path = tmp_path / "store.h5"
    sizes = [3, 1, 4, 1, 5]
    attrs = {"model": "llava", "layer": 12, "scale": 0.5, "flag": True, "prompt": "Décris l'image",
             "pooling": None, "ids": [1, 2], "nested": {"a": [1.5, "x"]}}
    embeddings = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    with StoreWriter(path, width=WIDTH, chunk_rows=4, attrs=attrs, with_image_index=True) as writer:
        write_images(writer, sizes)
        writer.put("embeddings", torch.from_numpy(embeddings))
        writer.put("image_ids", [f"img-{i}" for i in range(5)])
        writer.put("truth/leaf_dirs", np.eye(3), attrs={"level": 2})
    assert not parts_folder(path).exists()
    rows, index = reference_rows(sizes)
    with ActivationStore(path) as store:
        assert (store.n_rows, store.width, store.dtype, store.n_images) == (14, WIDTH, "float32", 5)
        assert store.attrs == {**attrs, "hsae_version": __version__}
        np.testing.assert_array_equal(store.rows(0, 14), rows)
        np.testing.assert_array_equal(store.image_index(), index)
        np.testing.assert_array_equal(store.read("embeddings"), embeddings)
        assert store.read("image_ids").tolist() == [f"img-{i}" for i in range(5)]
        assert store.has("truth") and store.has("truth/leaf_dirs") and not store.has("truth/x")
        assert store.dataset_attrs("truth/leaf_dirs") == {"level": 2}
    with h5py.File(path, "r") as file:  # plain attributes stay plain for other HDF5 tools
        assert file.attrs["layer"] == 12 and file.attrs["model"] == "llava"
        assert file["activations"].chunks == (4, WIDTH)


def test_float16_store_and_torch_input(tmp_path):
    path = tmp_path / "half.h5"
    data = torch.randn(10, WIDTH, dtype=torch.bfloat16)
    with StoreWriter(path, width=WIDTH, dtype="float16") as writer:
        writer.append(data)
    with ActivationStore(path) as store:
        assert store.dtype == "float16"
        expected = data.float().numpy().astype(np.float16).astype(np.float32)
        np.testing.assert_array_equal(store.rows(0, 10), expected)
        assert store.image_index() is None and store.n_images is None


@settings(max_examples=25, deadline=None)
@given(sizes=st.lists(st.integers(1, 7), min_size=1, max_size=12), chunk_rows=st.integers(1, 9),
       stops=st.lists(st.integers(0, 12), max_size=3), data=st.data())
def test_interrupted_writes_end_as_the_uninterrupted_one(tmp_path_factory, sizes, chunk_rows, stops, data):
    """Appending images in pieces, closing the writer after random images (and mid-image),
    then resuming, gives the uninterrupted store; resumes start at an image boundary."""
    path = tmp_path_factory.mktemp("resume") / "store.h5"
    stops = sorted(min(stop, len(sizes)) for stop in stops)
    for stop in [*stops, len(sizes)]:
        writer = StoreWriter(path, width=WIDTH, chunk_rows=chunk_rows, with_image_index=True)
        _, index = reference_rows(sizes)
        assert writer.rows_done == int(np.searchsorted(index, writer.images_done))
        for image in range(writer.images_done, stop):
            rows = image_rows(image, sizes[image])
            cut = data.draw(st.integers(0, len(rows)))
            writer.append(rows[:cut], image_index=image)
            writer.append(rows[cut:], image_index=np.full(len(rows) - cut, image))
        if stop < len(sizes):  # and half of the next image, which must not be kept
            writer.append(image_rows(stop, sizes[stop])[: sizes[stop] // 2 + 1], image_index=stop)
            writer.close()
        else:
            writer.finish()
    rows, index = reference_rows(sizes)
    with ActivationStore(path) as store:
        np.testing.assert_array_equal(store.rows(0, store.n_rows), rows)
        np.testing.assert_array_equal(store.image_index(), index)


def test_auto_commit_never_splits_an_image(tmp_path):
    path = tmp_path / "store.h5"
    writer = StoreWriter(path, width=WIDTH, chunk_rows=2, with_image_index=True)
    writer.append(image_rows(0, 3), image_index=0)
    assert writer.rows_done == 0  # image 0 may still grow
    writer.append(image_rows(1, 1), image_index=1)
    assert (writer.rows_done, writer.images_done) == (3, 1)
    writer.close()


def test_writer_without_image_index_commits_whole_appends(tmp_path):
    path = tmp_path / "store.h5"
    writer = StoreWriter(path, width=WIDTH, chunk_rows=4)
    writer.append(np.ones((3, WIDTH)))
    assert writer.rows_done == 0
    writer.append(np.ones((2, WIDTH)))
    assert writer.rows_done == 5
    writer.append(np.ones((1, WIDTH)))
    writer.close()  # commits the buffered append too
    assert StoreWriter(path, width=WIDTH).rows_done == 6


def test_exception_inside_with_leaves_a_resumable_store(tmp_path):
    path = tmp_path / "store.h5"
    with pytest.raises(RuntimeError):
        with StoreWriter(path, width=WIDTH, with_image_index=True) as writer:
            write_images(writer, [2, 2])
            writer.append(image_rows(2, 1), image_index=2)
            raise RuntimeError("extractor crashed")
    with pytest.raises(BadInput, match="resume the writer"):
        ActivationStore(path)
    with StoreWriter(path, width=WIDTH, with_image_index=True) as writer:
        assert (writer.rows_done, writer.images_done) == (4, 2)
        write_images(writer, [2, 2, 3])
    with ActivationStore(path) as store:
        np.testing.assert_array_equal(store.rows(0, 7), reference_rows([2, 2, 3])[0])


@pytest.mark.parametrize("setting, value", [("width", WIDTH + 1), ("dtype", "float16"),
                                            ("with_image_index", False)])
def test_resume_refuses_other_settings(tmp_path, setting, value):
    path = tmp_path / "store.h5"
    StoreWriter(path, width=WIDTH, with_image_index=True).close()
    settings_ = {"width": WIDTH, "with_image_index": True, setting: value}
    with pytest.raises(BadInput, match=f"{re.escape(str(parts_folder(path)))}.*{setting}=.*not {value!r}"):
        StoreWriter(path, **settings_)


def test_resume_merges_new_attrs(tmp_path):
    path = tmp_path / "store.h5"
    StoreWriter(path, width=WIDTH, attrs={"model": "a", "layer": 1}).close()
    with StoreWriter(path, width=WIDTH, attrs={"layer": 2}) as writer:
        writer.append(np.zeros((1, WIDTH)))
    with ActivationStore(path) as store:
        assert store.attrs == {"model": "a", "layer": 2, "hsae_version": __version__}


def test_finished_store_is_reported_and_refuses_appends(tmp_path):
    path = tmp_path / "store.h5"
    with StoreWriter(path, width=WIDTH, with_image_index=True) as writer:
        write_images(writer, [2, 3])
    writer = StoreWriter(path, width=WIDTH, with_image_index=True)
    assert writer.finished and (writer.rows_done, writer.images_done) == (5, 2)
    assert writer.finish() == path
    with pytest.raises(BadInput, match="finished"):
        writer.append(np.zeros((1, WIDTH)), image_index=2)
    with pytest.raises(BadInput, match="finished"):
        writer.put("embeddings", np.zeros((2, 2)))
    with pytest.raises(BadInput, match=f"{path}.*width {WIDTH}.*not width {WIDTH + 1}"):
        StoreWriter(path, width=WIDTH + 1)


def test_only_one_writer_at_a_time(tmp_path):
    path = tmp_path / "store.h5"
    first = StoreWriter(path, width=WIDTH)
    with pytest.raises(BadInput, match="another StoreWriter"):
        StoreWriter(path, width=WIDTH)
    first.close()
    StoreWriter(path, width=WIDTH).close()


@pytest.mark.parametrize("rows, message", [
    (np.zeros((2, WIDTH + 1)), r"shape \(2, 7\).*expected floats of shape \(rows, 6\)"),
    (np.zeros(WIDTH), r"shape \(6,\)"),
    (np.zeros((2, WIDTH), dtype=np.int32), "dtype int32"),
    (np.array([[0.0] * WIDTH, [np.nan] * WIDTH]), "row 3 of dataset 'activations' is NaN"),
    (np.full((1, WIDTH), 1e6), "row 2 of dataset 'activations' is NaN or infinite \\(as float16\\)"),
])
def test_append_refuses_bad_rows(tmp_path, rows, message):
    path = tmp_path / "store.h5"
    writer = StoreWriter(path, width=WIDTH, dtype="float16")
    writer.append(np.zeros((2, WIDTH)))
    with pytest.raises(BadInput, match=f"{path}.*{message}"):
        writer.append(rows)
    writer.close()


def test_append_refuses_bad_image_index(tmp_path):
    writer = StoreWriter(tmp_path / "store.h5", width=WIDTH, with_image_index=True)
    writer.append(np.zeros((2, WIDTH)), image_index=[0, 1])
    writer.commit()
    with pytest.raises(BadInput, match="image_index.*2 or later"):
        writer.append(np.zeros((1, WIDTH)), image_index=0)
    with pytest.raises(BadInput, match="image_index.*must not decrease"):
        writer.append(np.zeros((2, WIDTH)), image_index=[3, 2])
    with pytest.raises(BadInput, match=r"shape \(2,\)"):
        writer.append(np.zeros((2, WIDTH)), image_index=[3, 4, 5])
    with pytest.raises(ValueError, match="needs image_index"):
        writer.append(np.zeros((2, WIDTH)))
    writer.append(np.zeros((2, WIDTH)), image_index=2)
    writer.close()  # image 2 may have been incomplete: it is not committed
    assert StoreWriter(tmp_path / "store.h5", width=WIDTH, with_image_index=True).rows_done == 2


@pytest.mark.parametrize("name, array, message", [
    ("activations", np.zeros((1, WIDTH)), "written by append"),
    ("image_index", np.zeros(1), "written by append"),
    ("truth//x", np.zeros(1), "not a dataset path"),
    ("/truth", np.zeros(1), "not a dataset path"),
    ("embeddings", np.zeros(3), "2-D float array"),
    ("image_ids", np.zeros(3), "1-D array of strings"),
    ("mixed", np.array(["a", 1], dtype=object), "mixes strings"),
    ("truth/level/deeper", np.zeros(1), "'truth/level'"),
])
def test_put_refuses_bad_datasets(tmp_path, name, array, message):
    path = tmp_path / "store.h5"
    writer = StoreWriter(path, width=WIDTH)
    writer.put("truth/level", np.zeros(2))
    with pytest.raises(BadInput, match=message):
        writer.put(name, array)
    writer.close()


@pytest.mark.parametrize("attrs, message", [({"hsae_store_format": 2}, "'hsae_store_format' must be a string not starting"),
                                            ({"when": object()}, "not JSON-able")])
def test_attrs_are_checked(tmp_path, attrs, message):
    with pytest.raises(BadInput, match=message):
        StoreWriter(tmp_path / "store.h5", width=WIDTH, attrs=attrs)


def test_finish_refuses_an_inconsistent_store(tmp_path):
    path = tmp_path / "store.h5"
    writer = StoreWriter(path, width=WIDTH, with_image_index=True)
    write_images(writer, [1, 1, 1])
    writer.put("embeddings", np.zeros((2, 4)))
    with pytest.raises(BadInput, match="cannot finish.*reaches image 2.*'embeddings' lists 2"):
        writer.finish()
    writer.put("embeddings", np.zeros((3, 4)))
    writer.finish()
    assert ActivationStore(path).n_images == 3


def test_uncommitted_tail_and_stale_files_are_discarded(tmp_path):
    """What a kill between writing the logs and replacing state.json leaves behind."""
    path = tmp_path / "store.h5"
    writer = StoreWriter(path, width=WIDTH, with_image_index=True)
    write_images(writer, [2, 3])
    writer.close()
    parts = parts_folder(path)
    with open(parts / ACTIVATION_LOG, "ab") as log:
        log.write(b"\x7f" * (4 * WIDTH + 3))
    (parts / (STATE + ".tmp")).write_text('{"rows": 99')
    (parts / ASSEMBLY).write_bytes(b"half a file")
    with StoreWriter(path, width=WIDTH, with_image_index=True) as writer:
        assert writer.rows_done == 5
        write_images(writer, [2, 3, 1])
    with ActivationStore(path) as store:
        np.testing.assert_array_equal(store.rows(0, 6), reference_rows([2, 3, 1])[0])


def test_logs_shorter_than_committed_are_reported(tmp_path):
    path = tmp_path / "store.h5"
    writer = StoreWriter(path, width=WIDTH)
    writer.append(np.zeros((3, WIDTH)))
    writer.close()
    with open(parts_folder(path) / ACTIVATION_LOG, "r+b") as log:
        log.truncate(4 * WIDTH)
    with pytest.raises(BadInput, match=f"{ACTIVATION_LOG}: shorter than the 3 committed rows.*delete"):
        StoreWriter(path, width=WIDTH)


def test_parts_left_after_the_final_rename_are_removed(tmp_path):
    path = tmp_path / "store.h5"
    with StoreWriter(path, width=WIDTH) as writer:
        writer.append(np.ones((2, WIDTH)))
    (parts_folder(path)).mkdir()
    (parts_folder(path) / ACTIVATION_LOG).write_bytes(b"old")
    assert StoreWriter(path, width=WIDTH).finished
    assert not parts_folder(path).exists()
