"""scripts/results.py: the page it writes from finished runs (here a made-up sweep folder) states
what the numbers say, and names the runs' commit and time."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def results(load_script):
    return load_script("results")


def level(n: int, hms_mean: float | None = None, null: float = 0.2) -> dict:
    out = {"n_latents": n, "fvu": 0.1, "l0": 4.0}
    if hms_mean is not None:
        out["hms"] = {"mean": hms_mean, "median": hms_mean, "min": 0.0, "max": 1.0, "null_mean": null, "n_parents": 5}
        out["orphans"] = 3
    return out


def make_run(folder: Path, label: str, method: str, depth: int, hms_means: list[float]) -> None:
    folder.mkdir(parents=True)
    dataset = {"name": "synthetic_hierarchy", "seed": 0, **({"depth": 3} if depth == 3 else {})}
    widths = [16, 4, 2][:depth]
    recipe = {"name": f"sweep/{folder.name}", "data": {"dataset": dataset},
              "model": {"method": method, "levels": [{"n_latents": w, "encoder": {"name": "topk", "k": 1}} for w in widths]},
              "train": {"steps": 10, "batch_size": 8, "lr": 0.01}}
    (folder / "recipe.yaml").write_text(yaml.safe_dump(recipe))
    (folder / "config.json").write_text(json.dumps({"store": f"store-{depth}", "label": label}))
    levels = {"1": level(16)} | {str(l): level(widths[l - 1], m) for l, m in enumerate(hms_means, start=2)}
    recovery = {"threshold": 0.9, "leaf_recovery": 1.0, "mean_best_cosine": 0.95,
                "levels": [{"level": l, "f1": 0.5, "precision": 0.5, "recall": 0.5, "ari": 0.5, "n_learned_used": 4,
                            "n_true": 4} for l in range(2, depth + 1)]}
    (folder / "metrics.json").write_text(json.dumps({"levels": levels, "recovery": recovery, "split": "train"}))


def test_page_from_finished_runs(results, tmp_path):
    runs = tmp_path / "sweep"
    columns = [("bt", "BatchTopK", "flat", 2, [0.5]), ("csae", "CSAE (hsae)", "cascade", 2, [0.9]),
               ("bt3", "BatchTopK", "flat", 3, [0.7, 0.6]), ("csae3", "CSAE (hsae)", "cascade", 3, [0.4, 0.3])]
    for name, label, method, depth, means in columns:
        make_run(runs / name, label, method, depth, means)
    (runs / "sweep.json").write_text(json.dumps({"variants": [{"name": c[0], "label": c[1]} for c in columns]}))
    (runs / results.PROVENANCE).write_text(json.dumps({
        "commit": "abc1234", "uncommitted_changes": False, "started": "2026-01-01 00:00 UTC", "wall_s": 75.0,
        "cpu_cores": 2, "overrides": ["train.steps=10"], "recipe": "recipes/reproduce_synthetic.yaml"}))
    doc = tmp_path / "results.md"
    assert results.main(["--runs", str(runs), "--doc", str(doc)]) == 0
    text = doc.read_text()
    assert "Measured at commit abc1234 on 2026-01-01 00:00 UTC with `--set train.steps=10`: 1 min 15 s wall for all 4 variants" in text
    assert "CSAE (hsae) (0.900) > BatchTopK (0.500)" in text
    assert "CSAE (hsae) 1 of 2 on two levels" in text
    assert "agrees with the paper's Table 1 on one store only" in text
    assert "CSAE has the highest HMS mean in 12 of 12 settings" in text
    assert "| 2 levels: column | method | level 1 | level 2 |" in text


def test_unfinished_runs_are_named(results, tmp_path):
    runs = tmp_path / "sweep"
    make_run(runs / "bt", "BatchTopK", "flat", 2, [0.5])
    (runs / "bt" / "metrics.json").unlink()
    (runs / "sweep.json").write_text(json.dumps({"variants": [{"name": "bt", "label": "BatchTopK"}]}))
    with pytest.raises(SystemExit, match="bt: no metrics.json"):
        results.main(["--runs", str(runs), "--doc", str(tmp_path / "r.md")])


def test_level_settings_name_what_the_method_uses(results):
    settled = {"n_latents": 24, "encoder": {"name": "topk", "k": 1}, "start_step": 1000, "settle_every": 500}
    assert results.level_text(settled, 1, "cascade") == "24 × topk k = 1, from step 1000, settled every 500 steps"
    assert results.level_text(settled, 1, "hac") == "24 (clusters)"
    assert results.level_text(settled, 0, "cascade") == "24 × topk k = 1"
