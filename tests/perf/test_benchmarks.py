"""``python -m benchmarks`` end to end at tiny sizes: the Markdown report has a row per case, the
ratio lines, the HMS line and the extraction lines. Timings are not checked, only that they are
there; a peer library that is not installed is skipped with a note."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.__main__ import EXTRACTION_IMAGES, extraction_choice, selected
from benchmarks.cases import CASES, Case

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--d", "32", "--n", "128", "--k", "4", "--batch", "64", "--rounds", "1", "--steps", "1", "--warmup", "1",
        "--threads", "1"]
CASCADES = ["cascade 2 levels", "cascade 2 levels, update_every", "cascade 3 levels", "cascade 3 levels, update_every"]
PEERS_INSTALLED = all(importlib.util.find_spec(m) is not None for m in ("sae_lens", "dictionary_learning"))


def run_harness(tmp_path: Path, *options: str) -> tuple[str, dict]:
    """The report and the raw results of one run."""
    report, raw = tmp_path / "report.md", tmp_path / "results.json"
    done = subprocess.run([sys.executable, "-m", "benchmarks", *TINY, *options, "--out", str(report), "--json", str(raw)],
                          cwd=ROOT, capture_output=True, text=True, timeout=1200)  # a hang, not slowness: a
    # busy 2-core machine took over 300 s for the run with the peers installed (they were skipped before)
    assert done.returncode == 0, done.stderr[-3000:]
    return report.read_text(), json.loads(raw.read_text())


def table_rows(report: str) -> list[str]:
    """The case names in the report's table, in order."""
    rows = [line for line in report.splitlines() if line.startswith("| ") and not line.startswith("| case |")]
    return [row.split(" | ")[0].removeprefix("| ") for row in rows]


@pytest.mark.slow
def test_the_report_has_every_case_the_cascade_ratios_hms_and_extraction(tmp_path):
    report, raw = run_harness(tmp_path, "--cases", "hsae topk", "hsae topk, memory fast", "hsae topk dense", "cascade",
                              "--hms", "2000", "512", "--extraction", "qwen3_vl", "16")
    assert table_rows(report) == ["hsae topk", "hsae topk, memory fast", "hsae topk dense", *CASCADES]
    for name in CASCADES:
        assert f"- {name}: a step takes **" in report
    assert "- hsae topk, fast path: **" in report
    assert "- hsae topk (fast step): peak tensor memory of a step = **" in report  # tiny: auto takes the fast step
    assert "- hsae topk (train.memory auto): **" in report
    assert "- HMS over 2,000 images × 512 latents" in report
    assert "- extraction (hsae.extract.run_extraction; tiny random qwen3_vl model" in report
    assert "  - per image: bare forward" in report
    assert "failed" not in report, report[report.find("Note:"):]
    speeds = [r["samples_per_s"] for r in raw["results"].values()] + list(raw["extraction"]["images_per_s"].values())
    assert all(math.isfinite(v) and v > 0 for v in speeds)
    assert all(r["peak_tensor_mib"] >= r["state_mib"] > 0 for r in raw["results"].values())
    # the libraries' own import (over 100 MiB for torch and hsae) is not counted as the step's memory
    assert all(r["resident_growth_mib"] < 64 for r in raw["results"].values())
    assert raw["hms"]["images"] == 2000 and raw["hms"]["seconds"] > 0


@pytest.mark.slow
@pytest.mark.skipif(not PEERS_INSTALLED, reason="SAELens and dictionary_learning are an optional extra")
def test_the_peers_are_timed_with_hsae_and_compared(tmp_path):
    report, _ = run_harness(tmp_path, "--cases", "hsae topk", "saelens topk", "dictionary_learning topk",
                            "--hms", "0", "0", "--extraction", "none")
    assert table_rows(report) == ["hsae topk", "saelens topk", "dictionary_learning topk"]
    assert "- hsae topk: **" in report and "the samples/s of saelens topk" in report
    assert "the samples/s of dictionary_learning topk" in report
    assert "HMS over" not in report and "- extraction" not in report


def test_a_peer_that_is_not_installed_is_skipped_with_a_note(monkeypatch):
    absent = Case("absent topk", "absent", "topk", "a peer not installed", build=None, needs="hsae_no_such_module")
    monkeypatch.setitem(CASES, absent.name, absent)
    names, notes = selected(["hsae topk", "absent"])
    assert names == ["hsae topk"]
    assert notes == ["absent is not installed: its cases are skipped (docs/performance.md)"]
    with pytest.raises(SystemExit, match="unknown cases: nonesuch"):
        selected(["nonesuch"])


def test_the_extraction_option_takes_a_family_and_an_optional_image_count():
    assert extraction_choice(["none"]) is None
    assert extraction_choice(["gemma3"]) == ("gemma3", EXTRACTION_IMAGES)
    assert extraction_choice(["llava", "40"]) == ("llava", 40)
    for wrong in (["resnet"], ["qwen3_vl", "many"], ["qwen3_vl", "16", "2"]):
        with pytest.raises(SystemExit, match="--extraction takes FAMILY"):
            extraction_choice(wrong)


def test_step_times_split_an_update_every_cascade_by_cycle_position():
    from benchmarks.spec import Spec
    from benchmarks.step_times import FLAT, step_times

    spec = Spec(d=16, n=64, k=4, batch=32, threads=1, warmup=1, steps=8, update_every=4)
    times = step_times("cascade 2 levels, update_every", spec)
    every = "cascade 2 levels, update_every: steps training every level"
    level_1 = "cascade 2 levels, update_every: level 1 only"
    assert {kind: len(seconds) for kind, seconds in times.items()} == {FLAT: 8, every: 2, level_1: 6}
    assert all(s > 0 for seconds in times.values() for s in seconds)
