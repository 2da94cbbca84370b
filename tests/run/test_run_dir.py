"""One run directory holds one recipe: a different recipe is refused (exit 2) unless --fresh,
whether the earlier run finished, has checkpoints, or only began writing its store."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml

from hsae.run.run_dir import RunDir
from hsae.store import StoreWriter
from hsae.store.layout import parts_folder

from runkit import run_cli, small_recipe, write_recipe

SHORT = {"steps": 40, "checkpoint_every": 20}


@pytest.fixture
def short_run(tmp_path):
    """A finished run of a 40-step recipe, and the recipe file."""
    recipe = write_recipe(tmp_path / "short.yaml", small_recipe(train=SHORT))
    out = tmp_path / "run"
    assert run_cli("run", recipe, "--out", out).code == 0
    return recipe, out


def test_same_recipe_again_is_accepted(short_run):
    recipe, out = short_run
    result = run_cli("run", recipe, "--out", out)
    assert result.code == 0, result.output
    assert f"resumed from the checkpoint at step {SHORT['steps']}" in result.flat


def test_different_recipe_is_refused_unless_fresh(short_run, tmp_path):
    _, out = short_run
    other = write_recipe(tmp_path / "other.yaml", small_recipe(train={**SHORT, "lr": 3.0e-4}))
    before = (out / "model.safetensors").read_bytes()

    refused = run_cli("run", other, "--out", out)
    assert refused.code == 2
    assert "different recipe" in refused.flat and "--fresh" in refused.flat and str(out) in refused.flat
    assert "Traceback" not in refused.output
    assert (out / "model.safetensors").read_bytes() == before

    fresh = run_cli("run", other, "--out", out, "--fresh")
    assert fresh.code == 0, fresh.output
    assert yaml.safe_load((out / "recipe.yaml").read_text())["train"]["lr"] == 3.0e-4
    assert "resumed" not in fresh.flat


def test_different_recipe_over_an_unfinished_store_is_refused(tmp_path):
    """A store half written by another recipe must not be continued with other options."""
    out = tmp_path / "run"
    earlier = small_recipe(data={"dataset": {"name": "synthetic_hierarchy", "n_samples": 4000, "width": 32,
                                              "seed": 7}})
    out.mkdir()
    write_recipe(out / "recipe.yaml", earlier)
    writer = StoreWriter(out / "activations.h5", width=32, with_image_index=True)
    writer.append(np.ones((5, 32), dtype=np.float32), image_index=np.arange(5))
    writer.commit()
    writer.close()

    recipe = write_recipe(tmp_path / "small.yaml", small_recipe(train=SHORT))
    refused = run_cli("run", recipe, "--out", out)
    assert refused.code == 2 and "different recipe" in refused.flat
    assert parts_folder(out / "activations.h5").exists()

    fresh = run_cli("run", recipe, "--out", out, "--fresh")
    assert fresh.code == 0, fresh.output
    with StoreWriter(out / "activations.h5", width=32, with_image_index=True) as finished:
        assert finished.finished and finished.rows_done == 4000


def test_a_recipe_that_failed_before_making_anything_can_be_corrected(tmp_path):
    """Only recipe.yaml is there (the run stopped on bad input): a corrected recipe runs."""
    store = tmp_path / "mine.h5"
    with h5py.File(store, "w") as file:
        file["activations"] = np.random.default_rng(0).normal(size=(2000, 24)).astype(np.float32)
    out = tmp_path / "run"
    data = {"activations": str(store), "width": 16}
    failed = run_cli("run", write_recipe(tmp_path / "bad.yaml", small_recipe(train=SHORT, data=data, eval={})), "--out", out)
    assert failed.code == 2 and "width 24, expected 16" in failed.flat

    data["width"] = 24
    result = run_cli("run", write_recipe(tmp_path / "good.yaml", small_recipe(train=SHORT, data=data, eval={})), "--out", out)
    assert result.code == 0, result.output
    assert json.loads((out / "config.json").read_text())["n_inputs"] == 24


def test_the_recipe_file_is_replaced_whole(tmp_path, monkeypatch):
    """Another process of a data-parallel run reads recipe.yaml while the first writes it (a
    partly written file read as "not a recipe" failed a two-process run under load): the write
    goes through a temp file renamed over it, so a write cut short leaves the old recipe whole."""
    run = RunDir(tmp_path / "run")
    run.write_recipe({"name": "first", "train": {"steps": 10}})
    real_write = Path.write_text

    def cut_short(path, text, *args, **kwargs):
        real_write(path, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_text", cut_short)
    with pytest.raises(OSError):
        run.write_recipe({"name": "second", "train": {"steps": 20}})
    monkeypatch.undo()
    assert run.read_recipe_tree() == {"name": "first", "train": {"steps": 10}}
