"""A store a user makes with plain h5py, laid out as docs/formats.md says, trains through
``data: {activations: PATH}``; ``hsae eval`` and ``hsae inspect`` work on the finished run."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import yaml

from runkit import SMALL_RECIPE, run_cli, write_recipe


def clustered_rows(n_rows: int, width: int, seed: int) -> np.ndarray:
    """Rows near 12 random directions, so the cascade has something to find."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(12, width))
    return centres[rng.integers(0, 12, n_rows)] * rng.uniform(0.5, 1.5, (n_rows, 1)) + 0.1 * rng.normal(size=(n_rows, width))


def recipe_with(data: dict, **sections) -> dict:
    """SMALL_RECIPE with its data section replaced (and other sections, where given)."""
    return {**SMALL_RECIPE, "data": data, **sections}


def finish_and_revisit(recipe: Path, out: Path) -> dict:
    """Run the recipe, then ``hsae eval`` and ``hsae inspect`` on the run; returns metrics.json."""
    result = run_cli("run", recipe, "--out", out)
    assert result.code == 0, result.output
    metrics = json.loads((out / "metrics.json").read_text())
    (out / "metrics.json").unlink()
    evaluated = run_cli("eval", out)
    assert evaluated.code == 0, evaluated.output
    assert json.loads((out / "metrics.json").read_text()) == metrics
    inspected = run_cli("inspect", out)
    assert inspected.code == 0, inspected.output
    assert "latents with children" in inspected.output
    return metrics


def test_activations_only_float32(tmp_path, monkeypatch):
    """The least a store can be: one float32 dataset, named relative to the recipe's folder."""
    folder = tmp_path / "project"
    folder.mkdir()
    rows = clustered_rows(3000, 24, seed=0).astype(np.float32)
    with h5py.File(folder / "mine.h5", "w") as file:
        file.create_dataset("activations", data=rows)
    recipe = write_recipe(folder / "mine.yaml", recipe_with({"activations": "mine.h5"}, eval={}))
    monkeypatch.chdir(tmp_path)  # the store is found next to the recipe, not in the working folder

    metrics = finish_and_revisit(recipe, tmp_path / "run")
    assert metrics["levels"]["1"]["rows"] == 3000
    assert metrics["levels"]["1"]["fvu"] < 0.5
    assert "hms" not in metrics["levels"]["2"] and "recovery" not in metrics
    saved = yaml.safe_load((tmp_path / "run" / "recipe.yaml").read_text())
    assert saved["data"]["activations"] == str((folder / "mine.h5").resolve())
    assert json.loads((tmp_path / "run" / "config.json").read_text())["n_inputs"] == 24


def test_float16_with_image_index_and_embeddings(tmp_path):
    """Several tokens per image, backbone embeddings per image: HMS is measured over images."""
    rng = np.random.default_rng(1)
    tokens_per_image = rng.integers(1, 6, size=700)
    image_index = np.repeat(np.arange(700), tokens_per_image)
    rows = clustered_rows(len(image_index), 20, seed=1).astype(np.float16)
    with h5py.File(tmp_path / "tokens.h5", "w") as file:
        file.create_dataset("activations", data=rows, chunks=(512, 20))
        file.create_dataset("image_index", data=image_index.astype(np.int64))
        file.create_dataset("embeddings", data=rng.normal(size=(700, 8)).astype(np.float32))
        file.attrs["model"] = "someone's model"
        file.attrs["layer"] = 7
    recipe = write_recipe(tmp_path / "tokens.yaml", recipe_with({"activations": str(tmp_path / "tokens.h5")}))

    metrics = finish_and_revisit(recipe, tmp_path / "run")
    assert metrics["levels"]["1"]["rows"] == len(image_index)
    hms = metrics["levels"]["2"]["hms"]
    assert hms["n_units"] == 16 and hms["n_parents"] >= 1 and hms["mean"] is not None


def test_a_backbone_that_needs_embeddings_the_store_lacks_is_named(tmp_path):
    """The quickstart's eval (precomputed embeddings) on a store without them: exit 2, named."""
    with h5py.File(tmp_path / "bare.h5", "w") as file:
        file.create_dataset("activations", data=clustered_rows(1000, 16, seed=2).astype(np.float32))
    recipe = write_recipe(tmp_path / "bare.yaml", recipe_with({"activations": str(tmp_path / "bare.h5")},
                                                              train={**SMALL_RECIPE["train"], "steps": 20}))
    result = run_cli("run", recipe, "--out", tmp_path / "run")
    assert result.code == 2 and "Traceback" not in result.output
    assert "precomputed" in result.flat and "'embeddings'" in result.flat and "bare.h5" in result.flat


def test_a_store_with_its_own_truth_group_trains_and_evaluates(tmp_path):
    """``truth/…`` is free-form: without the planted-hierarchy marker, recovery is skipped with a
    note (printed and in metrics.json), never a reason to fail the run or ``hsae eval``."""
    rows = clustered_rows(3000, 24, seed=2).astype(np.float32)
    with h5py.File(tmp_path / "own.h5", "w") as file:
        file.create_dataset("activations", data=rows)
        file.create_dataset("truth/labels", data=np.arange(3000) % 12)
        file.create_dataset("truth/level2/directions", data=np.eye(24, dtype=np.float32)[:3])
    recipe = write_recipe(tmp_path / "own.yaml", recipe_with({"activations": str(tmp_path / "own.h5")}, eval={}))
    result = run_cli("run", recipe, "--out", tmp_path / "run")
    assert result.code == 0, result.output
    assert "no hierarchy recovery" in result.flat and "hsae_truth" in result.flat
    metrics = finish_and_revisit(recipe, tmp_path / "run")
    assert "recovery" not in metrics
    assert metrics["notes"] == [next(n for n in metrics["notes"] if n.startswith("no hierarchy recovery"))]


def test_a_marked_truth_group_that_is_malformed_is_a_note_too(tmp_path):
    rows = clustered_rows(3000, 24, seed=3).astype(np.float32)
    with h5py.File(tmp_path / "marked.h5", "w") as file:
        file.create_dataset("activations", data=rows)
        leaves = file.create_dataset("truth/level1/directions", data=np.eye(24, dtype=np.float32)[:6])
        leaves.attrs["hsae_truth"] = "planted-hierarchy/1"
    recipe = write_recipe(tmp_path / "marked.yaml", recipe_with({"activations": str(tmp_path / "marked.h5")}, eval={}))
    result = run_cli("run", recipe, "--out", tmp_path / "run")
    assert result.code == 0, result.output
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "recovery" not in metrics and "at least 2 levels" in metrics["notes"][0]
