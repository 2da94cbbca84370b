"""`hsae run` on a recipe with variants, and `hsae compare`."""

from __future__ import annotations

import csv
import json
import shutil

from sweepkit import TINY_SWEEP, hsae, write_yaml


def _csv_rows(path):
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_every_variant_runs_on_shared_stores_and_every_cell_is_computed(tiny_sweep):
    out, output = tiny_sweep
    names = [v["name"] for v in TINY_SWEEP["variants"]]
    assert all((out / name / "metrics.json").exists() for name in names)
    # one store per activation source: the two-level data and the three-level data
    assert sorted(p.name for p in (out / "stores").iterdir()) == ["1", "2"]
    assert not any((out / name / "activations.h5").exists() for name in names)
    stores = {json.loads((out / name / "config.json").read_text())["store"] for name in names}
    assert len(stores) == 2
    rows = _csv_rows(out / "compare.csv")
    tables = {row["data"] for row in rows}
    assert len(tables) == 2
    two_level = [r for r in rows if "depth" not in r["data"]]
    three_level = [r for r in rows if "depth" in r["data"]]
    labels2 = ["CSAE", "Partial SG", "TopK", "P-Anneal", "Matryoshka", "Stacked", "HAC", "SC"]
    assert {r["metric"] for r in two_level} >= {"HMS min", "HMS median", "HMS max", "HMS mean", "HMS null",
                                               "parents |P|", "FVU", "L0", "leaf recovery", "sibling F1"}
    assert {r["metric"] for r in three_level} >= {"L2 HMS mean", "L3 HMS mean", "F1 level 3"}
    for row in two_level:
        assert all(row[label] != "" for label in labels2), row
    for row in three_level:
        assert row["CSAE"] != "" and row["TopK"] != "", row
    for label in labels2:  # the printed table has every column
        assert label in output
    assert "–" not in (out / "compare.md").read_text()


def test_compare_of_chosen_runs_and_eval_of_a_baseline_run(tiny_sweep, tmp_path):
    out, _ = tiny_sweep
    code, output = hsae("compare", out / "hac", out / "matryoshka", "--out", tmp_path)
    assert code == 0, output
    assert "HAC" in output and "Matryoshka" in output
    assert (tmp_path / "compare.md").exists() and (tmp_path / "compare.csv").exists()
    assert (tmp_path / "compare.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    copy = tmp_path / "matryoshka"
    shutil.copytree(out / "matryoshka", copy)
    (copy / "metrics.json").unlink()
    code, output = hsae("eval", copy)
    assert code == 0, output
    assert json.loads((copy / "metrics.json").read_text()) == json.loads((out / "matryoshka" / "metrics.json").read_text())


def test_a_finished_sweep_run_again_trains_nothing_and_gives_the_same_table(tiny_sweep, tmp_path):
    out, _ = tiny_sweep
    copy = tmp_path / "out"
    shutil.copytree(out, copy)
    before = (copy / "compare.csv").read_text()
    logs = {v["name"]: (copy / v["name"] / "metrics.jsonl").read_text() for v in TINY_SWEEP["variants"]}
    code, output = hsae("run", write_yaml(tmp_path / "tiny.yaml", TINY_SWEEP), "--out", copy)
    assert code == 0, output
    assert (copy / "compare.csv").read_text() == before
    assert logs == {name: (copy / name / "metrics.jsonl").read_text() for name in logs}


def test_compare_refuses_what_is_not_a_finished_run(tmp_path):
    code, output = hsae("compare", tmp_path)
    assert code == 2 and "not a finished run" in output


def test_compare_without_out_writes_beside_the_runs_not_in_the_current_folder(tiny_sweep, tmp_path, monkeypatch):
    out, _ = tiny_sweep
    runs = tmp_path / "runs"
    for name in ("hac", "matryoshka"):
        shutil.copytree(out / name, runs / name)
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    code, output = hsae("compare", runs / "hac", runs / "matryoshka")
    assert code == 0, output
    assert list(cwd.iterdir()) == []
    assert {p.name for p in runs.iterdir()} >= {"compare.md", "compare.csv", "compare.png"}
