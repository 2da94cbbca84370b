"""Helpers of the sweep tests: a tiny sweep recipe and the ``hsae`` command in-process."""

from __future__ import annotations

import sys
from pathlib import Path

import yaml
from typer.testing import CliRunner

from hsae.cli.app import main

ROOT = Path(__file__).parents[2]

LEVELS2 = [{"n_latents": 48, "encoder": {"name": "topk", "k": 3}},
           {"n_latents": 12, "encoder": {"name": "topk", "k": 1}, "start_step": 40}]
LEVELS3 = [*LEVELS2, {"n_latents": 4, "encoder": {"name": "topk", "k": 1}, "start_step": 80}]
DEEP_DATA = {"name": "synthetic_hierarchy", "n_samples": 3000, "width": 32, "seed": 2,
             "depth": 3, "n_roots": 3, "branching": [4, 4]}

TINY_SWEEP = {
    "name": "tiny",
    "data": {"dataset": {"name": "synthetic_hierarchy", "n_samples": 3000, "width": 32, "seed": 1}},
    "model": {"levels": LEVELS2},
    "train": {"steps": 200, "batch_size": 128, "warmup_steps": 10, "checkpoint_every": 100, "threads": 1},
    "eval": {"backbone": {"name": "precomputed"}, "match_threshold": 0.6},
    "variants": [
        {"name": "csae", "label": "CSAE"},
        {"name": "partial", "label": "Partial SG", "set": {"model.stop_gradient": "partial"}},
        {"name": "topk", "label": "TopK", "set": {"model.method": "flat"}},
        {"name": "p_anneal", "label": "P-Anneal", "set": {
            "model.method": {"name": "p_anneal", "n_updates": 3},
            "model.levels.0.encoder": {"name": "relu"}, "model.levels.1.encoder": {"name": "relu"},
            "model.levels.0.sparsity_coef": 3.0, "model.levels.1.sparsity_coef": 3.0}},
        {"name": "matryoshka", "label": "Matryoshka", "set": {
            "model.method": "matryoshka", "model.levels.0.encoder": {"name": "batchtopk", "k": 4}}},
        {"name": "stacked", "label": "Stacked", "set": {"model.method": "stacked"}},
        {"name": "hac", "label": "HAC", "set": {"model.method": "hac"}},
        {"name": "spectral", "label": "SC", "set": {"model.method": "spectral"}},
        {"name": "csae3", "label": "CSAE", "set": {"data.dataset": DEEP_DATA, "model.levels": LEVELS3}},
        {"name": "flat3", "label": "TopK", "set": {"data.dataset": DEEP_DATA, "model.levels": LEVELS3,
                                                   "model.method": "flat"}},
    ],
}


def write_yaml(path: Path, tree: dict) -> Path:
    path.write_text(yaml.safe_dump(tree, sort_keys=False))
    return path


def hsae(*args) -> tuple[int, str]:
    """(exit code, output) of ``hsae ARGS`` run by ``main()`` in this process, 200 columns wide."""
    argv, code = sys.argv, 0
    with CliRunner().isolation(env={"COLUMNS": "200"}) as (stdout, _, _):
        sys.argv = ["hsae", *map(str, args)]
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            sys.argv = argv
            sys.stdout.flush()
        output = stdout.getvalue().decode()
    return code, output
