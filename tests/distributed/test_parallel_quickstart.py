"""The whole quickstart (3000 steps, evaluation) trained by ``hsae run --nproc 2`` (two gloo
processes) and by one process: level 1's FVU and the leaf recovery agree within 0.02, for the
shipped TopK cascade, the same with BatchTopK at level 1, and a three-level cascade with
stop_gradient none. Real end-to-end runs, about a minute each pair on 2 idle cores: the
BatchTopK and three-level variants run when HSAE_LONG_TESTS=1 is set, the TopK one always.

Sibling F1 (level 2) is not compared: level 2 of the quickstart ends in a different solution
whenever the float summation order changes, in one process too. One process trained on the
same batches with each batch's two halves swapped drifts from the plain run as far as two
processes do (level-2 decoder 0.78 relative against 0.51 at step 3000, level 1 1.4e-2 against
1.35e-2; docs/distributed.md)."""

from __future__ import annotations

import copy
import json
import os
import sys
from pathlib import Path

import pytest
import yaml

from launch import run

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"


def batchtopk(tree: dict) -> None:
    tree["model"]["levels"][0]["encoder"] = {"name": "batchtopk", "k": 4}


def three_levels(tree: dict) -> None:
    tree["model"]["stop_gradient"] = "none"
    tree["model"]["levels"].append({"n_latents": 6, "encoder": {"name": "topk", "k": 1}, "start_step": 1500})


VARIANTS = {"topk": lambda tree: None, "batchtopk": batchtopk, "three_levels_none": three_levels}
LONG = pytest.mark.skipif(not os.environ.get("HSAE_LONG_TESTS"), reason="set HSAE_LONG_TESTS=1 to run it")
RUN_LIMIT = 1200  # seconds per run: a guard against hanging on a busy machine, not a measurement


def figures(folder: Path) -> dict[str, float]:
    metrics = json.loads((folder / "metrics.json").read_text())
    return {"fvu": metrics["levels"]["1"]["fvu"], "leaf_recovery": metrics["recovery"]["leaf_recovery"]}


@pytest.mark.slow
@pytest.mark.parametrize("variant", [pytest.param(v, marks=[] if v == "topk" else [LONG]) for v in sorted(VARIANTS)])
def test_quickstart_in_two_processes_matches_one(variant, tmp_path):
    tree = yaml.safe_load(QUICKSTART.read_text())
    tree = copy.deepcopy(tree)
    VARIANTS[variant](tree)
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(tree, sort_keys=False))
    for n in (1, 2):
        run([sys.executable, "-m", "hsae", "run", str(recipe), "--out", str(tmp_path / f"n{n}"), "--nproc", str(n)],
            timeout=RUN_LIMIT)
    alone, together = figures(tmp_path / "n1"), figures(tmp_path / "n2")
    for name in alone:
        assert abs(alone[name] - together[name]) <= 0.02, (name, alone, together)
