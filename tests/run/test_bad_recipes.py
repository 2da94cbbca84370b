"""Malformed recipes end with exit code 2 and one paragraph naming the problem (the key, the
value or the file), never a traceback; ``hsae validate`` rejects those it can see unrun."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
import pytest

from runkit import cli_env, run_cli, small_recipe, write_recipe


def _store(path: Path, width: int, nan_row: int | None = None) -> Path:
    rows = np.random.default_rng(0).normal(size=(600, width)).astype(np.float32)
    if nan_row is not None:
        rows[nan_row, 3] = np.nan
    with h5py.File(path, "w") as file:
        file["activations"] = rows
    return path


def _level(recipe: dict, index: int, **changes) -> dict:
    recipe["model"]["levels"][index].update(changes)
    return recipe


@dataclass
class Case:
    """``make(folder)`` writes the recipe and returns its path; ``expected`` must all appear."""

    make: Callable[[Path], Path]
    expected: list[str]
    args: list[str] = field(default_factory=list)
    seen_by_validate: bool = True  # found without running (else only `hsae run` finds it)


def _recipe(tree_of: Callable[[Path], dict]) -> Callable[[Path], Path]:
    return lambda folder: write_recipe(folder / "recipe.yaml", tree_of(folder))


def _text(text: str) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        (folder / "broken.yaml").write_text(text)
        return folder / "broken.yaml"
    return make


CASES = {
    "wrong type": Case(_recipe(lambda f: small_recipe(train={"steps": "many"})),
                       ["train.steps", "'many'", "valid integer"]),
    "unknown top-level key": Case(_recipe(lambda f: {**small_recipe(), "trainer": {"steps": 5}}),
                                  ["trainer", "unknown key"]),
    "unknown key in a level": Case(_recipe(lambda f: _level(small_recipe(), 0, colour="red")),
                                   ["model.levels[0].colour", "unknown key"]),
    "unknown encoder plugin": Case(_recipe(lambda f: _level(small_recipe(), 1, encoder={"name": "softmax"})),
                                   ["model.levels[1].encoder", "'softmax'", "hsae.encoders",
                                    "available: batchtopk, gated, jumprelu, relu, topk"]),
    "bad encoder option": Case(_recipe(lambda f: _level(small_recipe(), 0, encoder={"name": "topk", "k": -1})),
                               ["model.levels[0].encoder", "'topk'", "k:", "(got -1)"]),
    "unknown dataset plugin": Case(_recipe(lambda f: small_recipe(data={"dataset": {"name": "planted"}})),
                                   ["data.dataset", "'planted'", "hsae.datasets", "synthetic_hierarchy"]),
    "missing store file": Case(_recipe(lambda f: small_recipe(data={"activations": str(f / "nowhere.h5")})),
                               ["data.activations", "store not found", "nowhere.h5"]),
    "store with NaN rows": Case(_recipe(lambda f: small_recipe(
        data={"activations": str(_store(f / "nan.h5", 32, nan_row=100))}, eval={})),
        ["nan.h5", "dataset 'activations'", "NaN", "row 100"], seen_by_validate=False),
    "width mismatch": Case(_recipe(lambda f: small_recipe(
        data={"activations": str(_store(f / "narrow.h5", 16)), "width": 32}, eval={})),
        ["narrow.h5", "dataset 'activations'", "width 16", "expected 32"]),
    "YAML syntax error": Case(_text("name: broken\nmodel: {levels: [\ntrain: {steps: 5}\n"),
                              ["broken.yaml", "not valid YAML", "line"]),
    "both dataset and activations": Case(_recipe(lambda f: small_recipe(data={
        "dataset": {"name": "synthetic_hierarchy"}, "activations": str(_store(f / "ok.h5", 32))})),
        ["data:", "either 'dataset'", "'activations'", "not both"]),
    "--set index out of range": Case(_recipe(lambda f: small_recipe()), ["--set model.levels.5.n_latents",
                                     "model.levels is a list of 2", "'5'"],
                                     args=["--set", "model.levels.5.n_latents=8"]),
    "--set below a value": Case(_recipe(lambda f: small_recipe()), ["--set train.steps.max",
                                "train.steps is a value (300)"], args=["--set", "train.steps.max=3"]),
    "no model section": Case(_recipe(lambda f: {k: v for k, v in small_recipe().items() if k != "model"}),
                             ["model:", "Field required"]),
    "image dataset as an activation source": Case(
        _recipe(lambda f: small_recipe(data={"dataset": {"name": "synthetic_colors"}})),
        ["data.dataset", "'synthetic_colors'", "image dataset", "extract"], seen_by_validate=False),
    "no recipe file": Case(lambda folder: folder / "absent.yaml", ["recipe file not found", "absent.yaml"]),
}


def assert_one_paragraph_naming(result, expected: list[str]) -> None:
    assert result.code == 2, result.output
    assert "Traceback" not in result.output
    message = result.output[result.output.index("error:"):].strip()
    assert "\n\n" not in message and len(message.splitlines()) <= 8, message
    for part in expected:
        assert part in " ".join(message.split()), f"{part!r} is not named in: {message}"


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_run_rejects_with_exit_2_and_a_message(case, tmp_path):
    result = run_cli("run", case.make(tmp_path), "--out", tmp_path / "run", *case.args)
    assert_one_paragraph_naming(result, case.expected)


@pytest.mark.parametrize("case", [c for c in CASES.values() if c.seen_by_validate],
                         ids=[k for k, c in CASES.items() if c.seen_by_validate])
def test_validate_rejects_with_exit_2_and_a_message(case, tmp_path):
    result = run_cli("validate", case.make(tmp_path), *case.args)
    assert_one_paragraph_naming(result, case.expected)
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_the_console_script_exits_2_without_a_traceback(tmp_path):
    """The installed ``hsae`` executable itself, in a process of its own."""
    script = shutil.which("hsae", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ["PATH"]]))
    assert script, "the hsae console script is not installed (pip install -e .)"
    recipe = CASES["unknown key in a level"].make(tmp_path)
    done = subprocess.run([str(script), "run", str(recipe), "--out", str(tmp_path / "run")], env=cli_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    assert "Traceback" not in done.stdout + done.stderr
    assert "model.levels[0].colour: unknown key" in done.stdout + done.stderr
