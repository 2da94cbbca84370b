"""The example third-party package (examples/hsae-annealed-topk) installs with pip like any
package, offline, into a throw-away folder; hsae then lists its encoder and hierarchy method
and trains, scores and reloads a run that uses both, without a line of hsae changed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "examples" / "hsae-annealed-topk"
HSAE = [sys.executable, "-c", "from hsae.cli.app import main; main()"]

RECIPE = {
    "name": "example",
    "data": {"dataset": {"name": "synthetic_hierarchy", "n_samples": 2000, "width": 16, "seed": 3}},
    "model": {
        "method": {"name": "cosine_parents", "min_cosine": 0.1},
        "levels": [
            {"n_latents": 32, "encoder": {"name": "annealed_topk", "k": 3, "k_start": 12, "anneal_batches": 40}},
            {"n_latents": 8, "encoder": {"name": "annealed_topk", "k": 1, "k_start": 4, "anneal_batches": 40}},
        ],
    },
    "train": {"steps": 60, "batch_size": 64, "warmup_steps": 5, "checkpoint_every": 30, "log_every": 10,
              "threads": 1},
    "eval": {"backbone": None},
}


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> dict[str, str]:
    """The environment of a process that sees the package installed into a --target folder."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    env = {**os.environ, "PIP_NO_INPUT": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1", "TMPDIR": str(build)}
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(target), str(PACKAGE)],
        capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (target / "hsae_annealed_topk" / "method.py").exists()
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")]),
            "COLUMNS": "200"}


def hsae(env: dict[str, str], *args, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([*HSAE, *map(str, args)], capture_output=True, text=True, env=env, cwd=cwd, timeout=600)


def test_hsae_plugins_lists_the_installed_encoder_and_method(installed, tmp_path):
    done = hsae(installed, "plugins", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    for group, name in (("hsae.encoders", "annealed_topk"), ("hsae.methods", "cosine_parents")):
        section = done.stdout[done.stdout.index(group):]
        line = next(line for line in section.splitlines() if f" {name} " in line)
        assert "hsae_annealed_topk 0.1.0" in line.replace("-", "_"), line


def test_without_the_install_the_plugins_are_unknown(tmp_path):
    done = hsae(dict(os.environ), "plugins", cwd=tmp_path)
    assert done.returncode == 0 and "annealed_topk" not in done.stdout and "cosine_parents" not in done.stdout


@pytest.mark.slow
def test_a_recipe_uses_the_installed_encoder_and_method(installed, tmp_path):
    recipe = tmp_path / "example.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE, sort_keys=False))
    assert hsae(installed, "validate", recipe, cwd=tmp_path).returncode == 0

    done = hsae(installed, "run", recipe, "--out", tmp_path / "run", cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["method"] == "cosine_parents"
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["levels"]) == {"1", "2"} and metrics["levels"]["1"]["l0"] <= 3
    hierarchy = json.loads((tmp_path / "run" / "hierarchy.json").read_text())
    assert len(hierarchy["levels"][0]["parent"]) == 32

    again = hsae(installed, "eval", tmp_path / "run", cwd=tmp_path)  # reloaded through the method plugin
    assert again.returncode == 0, again.stdout + again.stderr
    assert json.loads((tmp_path / "run" / "hierarchy.json").read_text()) == hierarchy
