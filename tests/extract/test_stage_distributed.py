"""The extraction stage in 2 gloo processes (127.0.0.1): each computes its batches into a part
store, and the store assembled from them is identical to the one a single process writes; a
process killed with SIGKILL leaves its part resumable, and the rerun ends with the same store."""

from __future__ import annotations

import json

import numpy as np

from hsae.extract import run_extraction

from launch import run, script, torchrun
from test_stage import QUIET, read_store, section


def assert_same_store(path, expected):
    got = read_store(path)
    np.testing.assert_array_equal(got["image_index"], expected["image_index"])
    np.testing.assert_array_equal(got["rows"], expected["rows"])
    assert got["ids"] == expected["ids"] and got["labels"] == expected["labels"]
    assert got["attrs"] == expected["attrs"]


def test_two_processes_write_the_single_process_store_and_resume_after_a_kill(tiny_model_dir, registered, tmp_path):
    spec = section(tiny_model_dir("qwen3_vl"), layer="language.1", n_images=14, chunk_images=1,
                   extractor={"batch_size": 3, "tokens": "all"})
    run_extraction(spec, tmp_path / "alone.h5", QUIET)
    alone = read_store(tmp_path / "alone.h5")

    run(torchrun(2, script("extract_worker.py"), json.dumps(spec), str(tmp_path / "together.h5")), [str(registered)])
    assert_same_store(tmp_path / "together.h5", alone)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alone.h5", "together.h5"]  # parts and marker removed

    # process 0 (batches 0, 2, 4: images 0-2, 6-8, 12-13) killed after its first two batches
    killed = run(torchrun(2, script("extract_worker.py"), json.dumps(spec), str(tmp_path / "killed.h5"), "4"),
                 [str(registered)], check=False)
    assert killed.returncode != 0
    assert not (tmp_path / "killed.h5").exists()
    assert (tmp_path / "killed.h5.part-0-of-2.h5.parts").is_dir()  # its journal, resumable
    run(torchrun(2, script("extract_worker.py"), json.dumps(spec), str(tmp_path / "killed.h5")), [str(registered)])
    assert_same_store(tmp_path / "killed.h5", alone)
