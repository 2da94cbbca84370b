"""``hsae eval`` recomputes a finished run's figures; ``hsae inspect`` shows its hierarchy."""

from __future__ import annotations

import json
import shutil

from runkit import run_cli, small_recipe, write_recipe


def test_eval_recomputes_the_same_metrics(finished_run, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(finished_run, copy)
    (copy / "metrics.json").unlink()
    (copy / "hierarchy.json").unlink()

    result = run_cli("eval", copy)
    assert result.code == 0, result.output
    for name in ("metrics.json", "hierarchy.json"):
        assert json.loads((copy / name).read_text()) == json.loads((finished_run / name).read_text())
    assert "FVU" in result.output and "HMS" in result.output


def test_inspect_shows_every_parent_with_its_hms_and_children(finished_run):
    hierarchy = json.loads((finished_run / "hierarchy.json").read_text())
    per_parent = json.loads((finished_run / "metrics.json").read_text())["levels"]["2"]["hms"]["per_parent"]
    children = hierarchy["levels"][0]["children"]

    result = run_cli("inspect", finished_run, "--max-parents", "100")
    assert result.code == 0, result.output
    for parent, kids in children.items():
        line = next(l for l in result.output.splitlines() if f"latent {parent} " in l)
        assert f"({len(kids)} children)" in line
        score = per_parent[int(parent)]
        assert (f"HMS {score:.3f}" if score is not None else "HMS –") in line
    assert f"{len(children)} latents with children" in result.flat


def test_inspect_and_eval_refuse_what_is_not_a_finished_run(tmp_path, finished_run):
    empty = tmp_path / "empty"
    empty.mkdir()
    for command in ("eval", "inspect"):
        result = run_cli(command, empty)
        assert result.code == 2, result.output
        assert str(empty) in result.flat and "Traceback" not in result.output
    result = run_cli("inspect", finished_run, "--level", "3")
    assert result.code == 2 and "no level 3" in result.flat


def test_eval_works_from_another_folder_on_a_run_made_with_a_relative_out(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    recipe = write_recipe(tmp_path / "small.yaml", small_recipe(train={"steps": 20}))
    assert run_cli("run", recipe.name, "--out", "runs/relative").code == 0

    monkeypatch.chdir(tmp_path / "runs" / "relative")
    result = run_cli("eval", ".")
    assert result.code == 0, result.output
