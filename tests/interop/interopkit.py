"""Helpers of the interop tests: a tiny recipe trained in-process (imported as ``interopkit``,
a name no other test folder uses)."""

from __future__ import annotations

import copy
from pathlib import Path

from hsae.run.pipeline import Hooks, run_recipe
from hsae.recipe.load import parse_recipe
from hsae.run.run_dir import RunDir

TINY = {
    "name": "tiny",
    "data": {"dataset": {"name": "synthetic_hierarchy", "n_samples": 2000, "width": 16, "seed": 3}},
    "model": {"levels": [{"n_latents": 32, "encoder": {"name": "topk", "k": 3}},
                         {"n_latents": 8, "encoder": {"name": "topk", "k": 1}}]},
    "train": {"steps": 60, "batch_size": 64, "warmup_steps": 5, "checkpoint_every": 1000, "log_every": 10,
              "threads": 1},
    "eval": {"backbone": {"name": "precomputed"}},
}


def train_tiny(out: Path, model: dict | None = None, **sections) -> Path:
    """Train TINY (with its model section's keys replaced by ``model``) into ``out``."""
    tree = copy.deepcopy(TINY)
    tree["model"].update(copy.deepcopy(model or {}))
    tree.update(copy.deepcopy(sections))
    run_recipe(parse_recipe(tree, "tiny.yaml"), tree, RunDir(out), Hooks())
    return out


def tiny_runs_in(root: Path) -> dict[str, Path]:
    """A cascade (TopK, then Gated above), and flat BatchTopK and JumpReLU baselines."""
    return {
        "cascade": train_tiny(root / "cascade", {"levels": [
            {"n_latents": 32, "encoder": {"name": "topk", "k": 3}},
            {"n_latents": 8, "encoder": {"name": "gated"}, "sparsity_coef": 0.01}]}),
        "batchtopk": train_tiny(root / "batchtopk", {"method": "flat", "levels": [
            {"n_latents": 32, "encoder": {"name": "batchtopk", "k": 3}},
            {"n_latents": 8, "encoder": {"name": "batchtopk", "k": 1}}]}),
        "jumprelu": train_tiny(root / "jumprelu", {"method": "flat", "levels": [
            {"n_latents": 32, "encoder": {"name": "jumprelu"}, "sparsity_coef": 0.001},
            {"n_latents": 8, "encoder": {"name": "relu"}, "sparsity_coef": 0.01}]}),
    }
