"""A writer killed with SIGKILL at random moments, then rerun, ends with the same store as an
uninterrupted write: same rows in the same order, same image_index, attributes and extras."""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from hsae.errors import BadInput
from hsae.store import ActivationStore
from hsae.store.layout import parts_folder

TARGET = Path(__file__).with_name("store_kill_target.py")
ROOT = Path(__file__).parents[2]
PAUSE = 0.004
N_IMAGES = 60  # as in store_kill_target.py


def start(path: Path, pause: float, *kill_point: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(TARGET), str(path), str(pause), *kill_point], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def run_to_end(path: Path, pause: float) -> list[str]:
    process = start(path, pause)
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    return out.split()


def contents(path: Path) -> dict:
    """Every dataset and attribute of the HDF5 file, for an exact comparison."""
    def record(name, obj):
        if isinstance(obj, h5py.Dataset):
            found[name] = (obj[()], obj.dtype, obj.chunks, dict(obj.attrs))

    with h5py.File(path, "r") as file:
        found = {"/": dict(file.attrs)}
        file.visititems(record)
    return found


def assert_same(found: dict, expected: dict) -> None:
    assert found.keys() == expected.keys()
    for name, value in expected.items():
        if name == "/":
            assert found[name].keys() == value.keys()
            assert all(np.array_equal(found[name][key], value[key]) for key in value)
            continue
        data, dtype, chunks, attrs = found[name]
        assert (dtype, chunks, attrs) == value[1:], name
        assert data.tobytes() == value[0].tobytes(), name


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    path = tmp_path_factory.mktemp("reference") / "store.h5"
    run_to_end(path, 0.0)
    return contents(path)


def kill_after(path: Path, lines: int, delay: float) -> None:
    """Start the writer, wait for ``lines`` lines of output (or its end), sleep, SIGKILL it."""
    process = start(path, PAUSE)
    for _ in range(lines):
        if not process.stdout.readline():
            break
    time.sleep(delay)
    process.kill()
    process.communicate()


def check_resume_point(words: list[str], reference: dict) -> None:
    """A resumed writer starts exactly at an image boundary of the reference."""
    rows, images = int(words[1]), int(words[2])
    index = reference["image_index"][0]
    assert rows == np.searchsorted(index, images)
    assert images == 0 or index[rows - 1] == images - 1


@pytest.mark.parametrize("seed", range(3))
def test_killed_writer_resumes_to_identical_store(tmp_path, reference, seed):
    path = tmp_path / "store.h5"
    rng = random.Random(seed)
    for _ in range(3):
        kill_after(path, rng.randint(1, N_IMAGES), rng.uniform(0, 3 * PAUSE))
    words = run_to_end(path, PAUSE)
    check_resume_point(words, reference)
    assert words[-1] == "done"
    assert not parts_folder(path).exists()
    assert_same(contents(path), reference)


@pytest.mark.parametrize("seed", range(2))
def test_writer_killed_while_finishing_resumes_to_identical_store(tmp_path, reference, seed):
    path = tmp_path / "store.h5"
    kill_after(path, N_IMAGES + 2, random.Random(seed).uniform(0, 0.03))  # after "finishing"
    if not path.exists():
        with pytest.raises(BadInput, match="resume the writer"):
            ActivationStore(path)
    words = run_to_end(path, PAUSE)
    check_resume_point(words, reference)
    assert_same(contents(path), reference)


@pytest.mark.parametrize("point, call", [("state", 2), ("state", 33), ("assembly", 1),
                                         ("assembly", 40), ("cleanup", 1)])
def test_writer_killed_at_the_worst_moments_resumes_to_identical_store(tmp_path, reference, point, call):
    path = tmp_path / "store.h5"
    process = start(path, 0.0, point, str(call))
    process.communicate(timeout=120)
    assert process.returncode == -signal.SIGKILL
    words = run_to_end(path, 0.0)
    check_resume_point(words, reference)
    assert not parts_folder(path).exists()
    assert_same(contents(path), reference)
