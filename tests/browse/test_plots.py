"""The run's plots from its files: what each needs, and nothing drawn without it."""

from __future__ import annotations

import json

from hsae.plots import write_run_plots

PNG = b"\x89PNG\r\n\x1a\n"


def write_run(root, hms):
    root.mkdir()
    lines = [{"step": s, "levels": {"1": {"fvu": 1 / (s + 1), "l0": 4.0, "dead": 0.0},
                                    **({"2": {"fvu": 0.5, "l0": 1.0, "dead": 0.1}} if s >= 20 else {})}}
             for s in range(0, 50, 10)]
    (root / "metrics.jsonl").write_text("".join(json.dumps(l) + "\n" for l in lines) + '{"step": 5')  # a cut line
    (root / "metrics.json").write_text(json.dumps({"levels": {"1": {"fvu": 0.1}, "2": {"fvu": 0.5, "hms": hms}}}))
    (root / "hierarchy.json").write_text(json.dumps({"widths": [4, 2], "levels": [
        {"level": 2, "n_latents": 2, "parent": [0, 0, 1, -1], "children": {"0": [0, 1], "1": [2]}, "orphans": 1}]}))


def test_every_plot_is_written_from_the_run_files(tmp_path):
    hms = {"mean": 0.4, "null_mean": 0.3, "null_std": 0.02, "null_draws": 20, "per_parent": [0.45, None]}
    write_run(tmp_path / "run", hms)
    written = write_run_plots(tmp_path / "run")
    assert [p.name for p in written] == ["training.png", "hms.png", "children.png"]
    assert all(p.read_bytes()[:8] == PNG for p in written)


def test_a_level_without_hms_gets_no_hms_plot(tmp_path):
    hms = {"mean": None, "null_mean": None, "null_std": None, "null_draws": 20, "per_parent": [None, None]}
    write_run(tmp_path / "run", hms)
    assert [p.name for p in write_run_plots(tmp_path / "run")] == ["training.png", "children.png"]
