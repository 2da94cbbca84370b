"""docs/api.md's example runs as written, in a folder whose runs/quickstart is a finished run."""

from __future__ import annotations

import copy
import re
from pathlib import Path

from hsae.run.pipeline import Hooks, run_recipe
from hsae.recipe.load import parse_recipe
from hsae.run.run_dir import RunDir

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
SMALL = {
    "name": "quickstart",
    "data": {"dataset": {"name": "synthetic_hierarchy", "n_samples": 2000, "width": 16, "seed": 0}},
    "model": {"stop_gradient": "bilateral", "levels": [{"n_latents": 32, "encoder": {"name": "topk", "k": 3}},
                                                       {"n_latents": 8, "encoder": {"name": "topk", "k": 1}}]},
    "train": {"steps": 60, "batch_size": 64, "warmup_steps": 5, "checkpoint_every": 1000, "threads": 1},
}


def test_the_api_page_example_runs(tmp_path, monkeypatch, capsys):
    tree = copy.deepcopy(SMALL)
    run_recipe(parse_recipe(tree), tree, RunDir(tmp_path / "runs" / "quickstart"), Hooks())
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/api.md has no python example"
    monkeypatch.chdir(tmp_path)
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})
    out = capsys.readouterr().out
    assert "level-1 FVU" in out and "children" in out
