"""Helpers of the run-layer tests: a small recipe, the ``hsae`` CLI in-process (typer's
CliRunner around ``hsae.cli.app.main``, so exit codes come from ``main``) and as a real
subprocess (for tests that kill it), and exact comparisons of tensors and HDF5 datasets."""

from __future__ import annotations

import copy
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np
import torch
import yaml
from safetensors.torch import load_file
from typer.testing import CliRunner

from hsae.cli.app import main

ROOT = Path(__file__).parents[2]
WIDE = "1000"  # terminal columns, so that rich does not fold long paths inside a message

SMALL_RECIPE = {
    "name": "small",
    "data": {"dataset": {"name": "synthetic_hierarchy", "n_samples": 4000, "width": 32, "seed": 1}},
    "model": {
        "stop_gradient": "bilateral",
        "levels": [
            {"n_latents": 64, "encoder": {"name": "topk", "k": 4}},
            {"n_latents": 16, "encoder": {"name": "topk", "k": 1}, "start_step": 50},
        ],
    },
    "train": {"steps": 300, "batch_size": 128, "warmup_steps": 20, "checkpoint_every": 100,
              "log_every": 10, "threads": 1},
    "eval": {"backbone": {"name": "precomputed"}},
}


def small_recipe(train: dict | None = None, **sections) -> dict:
    """SMALL_RECIPE with the keys of ``train`` merged into its train section and whole
    sections replaced by ``sections``."""
    tree = copy.deepcopy(SMALL_RECIPE)
    tree["train"].update(train or {})
    tree.update(copy.deepcopy(sections))
    return tree


def write_recipe(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


@dataclass
class CliResult:
    code: int
    output: str  # stdout and stderr together

    @property
    def flat(self) -> str:
        """The output with all runs of whitespace made single spaces."""
        return " ".join(self.output.split())


def run_cli(*args: str | Path) -> CliResult:
    """``hsae ARGS`` in this process: ``main()`` inside CliRunner's captured streams."""
    runner = CliRunner()
    argv = sys.argv
    code = 0
    with runner.isolation(env={"COLUMNS": WIDE}) as (stdout, stderr, _):
        sys.argv = ["hsae", *map(str, args)]
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            sys.argv = argv
            sys.stdout.flush()
            sys.stderr.flush()
        output = stdout.getvalue().decode() + stderr.getvalue().decode()
    return CliResult(code, output)


def cli_command(*args: str | Path) -> list[str]:
    """The argv of ``hsae ARGS`` as a subprocess of this interpreter."""
    return [sys.executable, "-c", "from hsae.cli.app import main; main()", *map(str, args)]


def cli_env() -> dict[str, str]:
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "COLUMNS": WIDE}


def model_tensors(run_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(run_dir / "model.safetensors")


def assert_same_tensors(found: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert found.keys() == expected.keys()
    for name, tensor in expected.items():
        assert torch.equal(found[name], tensor), f"tensor {name} differs"


def store_datasets(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an HDF5 file by name, for an exact comparison."""
    found = {}
    with h5py.File(path, "r") as file:
        file.visititems(lambda name, obj: found.__setitem__(name, obj[()]) if isinstance(obj, h5py.Dataset) else None)
    return found


def assert_same_datasets(found: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert found.keys() == expected.keys()
    for name, data in expected.items():
        assert found[name].dtype == data.dtype and found[name].shape == data.shape, name
        assert found[name].tobytes() == data.tobytes(), f"dataset {name} differs"
