"""Fault injection on real ``hsae run`` processes: SIGTERM, SIGKILL with a second run on the same
folder, a full disk while a checkpoint or the store is written (ENOSPC injected by
fault_target.py), corrupted checkpoints and a diverging loss. Every case ends with a run that
``hsae run`` resumes, and the resumed run ends with exactly what an uninterrupted run writes:
the same weights, metrics.jsonl and metrics.json (docs/reliability.md)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from hsae.train.checkpoint import verify_checkpoint

from runkit import (
    assert_same_datasets,
    assert_same_tensors,
    cli_command,
    cli_env,
    model_tensors,
    run_cli,
    small_recipe,
    store_datasets,
    write_recipe,
)
from test_resume import checkpoint_step, interrupt_when, logged_steps, past_checkpoint, start

TARGET = Path(__file__).with_name("fault_target.py")
TRAIN = {"steps": 160, "batch_size": 64, "checkpoint_every": 20, "log_every": 5}
DATASET = {"name": "synthetic_hierarchy", "n_samples": 6000, "width": 32, "seed": 1}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def recipe(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("faults")
    return write_recipe(folder / "small.yaml", small_recipe(train=TRAIN, data={"dataset": DATASET}))


@pytest.fixture(scope="module")
def reference(recipe) -> Path:
    """The uninterrupted run every faulty one must end equal to."""
    out = recipe.parent / "reference"
    result = run_cli("run", recipe, "--out", out)
    assert result.code == 0, result.output
    return out


@pytest.fixture(scope="module")
def full_disk_runs(recipe) -> dict[int, tuple[Path, subprocess.CompletedProcess]]:
    """Runs stopped by a full disk at their 2nd and 4th checkpoint (the 3rd and 7th safetensors
    file written), by the step of their last good checkpoint; tests work on copies."""
    runs = {}
    for good, nth_file in ((20, 3), (60, 7)):
        out = recipe.parent / f"full-disk-{good}"
        runs[good] = out, with_fault("enospc-checkpoint", nth_file, "run", recipe, "--out", out)
    return runs


def copy_of(runs: dict, good: int, to: Path) -> tuple[Path, subprocess.CompletedProcess]:
    folder, done = runs[good]
    shutil.copytree(folder, to)
    return to, done


def with_fault(fault: str, n: int, *args) -> subprocess.CompletedProcess:
    command = [sys.executable, str(TARGET), fault, str(n), *map(str, args)]
    return subprocess.run(command, env=cli_env(), capture_output=True, text=True, timeout=600)


def said(done: subprocess.CompletedProcess) -> str:
    return " ".join((done.stdout + done.stderr).split())


def checkpoints(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


def resume_and_compare(recipe: Path, run: Path, reference: Path, *expected: str) -> str:
    """``hsae run`` again on ``run``: it must finish, say ``expected``, and equal ``reference``."""
    result = run_cli("run", recipe, "--out", run)
    assert result.code == 0, result.output
    for text in expected:
        assert text in result.flat, result.output
    assert_same_tensors(model_tensors(run), model_tensors(reference))
    assert (run / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    assert json.loads((run / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    return result.flat


def test_sigterm_stops_at_the_next_step_with_a_checkpoint(recipe, reference, tmp_path):
    run = tmp_path / "run"
    status = interrupt_when(start(["run", recipe, "--out", run], tmp_path / "out.txt"), past_checkpoint(run, 20),
                            signal.SIGTERM)
    output = " ".join((tmp_path / "out.txt").read_text().split())
    assert status == 128 + signal.SIGTERM, output
    assert "stopped by SIGTERM after step" in output and "Traceback" not in output
    stopped = int(output.split("stopped by SIGTERM after step ")[1].split(",")[0])
    assert checkpoint_step(run) == stopped + 1 < TRAIN["steps"]  # the step it had finished, not the last periodic one
    assert max(logged_steps(run)) <= stopped
    resume_and_compare(recipe, run, reference, f"resumed from the checkpoint at step {stopped + 1}")


def test_a_second_run_is_refused_and_a_killed_run_does_not_block_the_next(recipe, reference, tmp_path):
    run = tmp_path / "run"
    with open(tmp_path / "first.txt", "w") as sink:  # slowed down from step 30, so that it is still training
        first = subprocess.Popen([sys.executable, str(TARGET), "slow-from", "30", "run", recipe, "--out", run],
                                 env=cli_env(), stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 300
        while (checkpoint_step(run) or 0) < 20:
            assert first.poll() is None and time.monotonic() < deadline, "the first run never trained"
            time.sleep(0.05)
        started = time.monotonic()
        second = subprocess.run(cli_command("run", recipe, "--out", run), env=cli_env(), capture_output=True, text=True,
                                timeout=300)
        assert first.poll() is None, "the first run ended before the second was refused"
        assert second.returncode == 2, said(second)
        assert f"is in use by another hsae run (process {first.pid})" in said(second)
        assert "Traceback" not in said(second)
        assert not (run / "model.safetensors").exists() and time.monotonic() - started < 120
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    resume_and_compare(recipe, run, reference)  # the dead run's lock is gone with it


def test_a_full_disk_while_writing_a_checkpoint_keeps_the_one_before(recipe, reference, full_disk_runs, tmp_path):
    run, done = copy_of(full_disk_runs, 20, tmp_path / "run")
    assert done.returncode == 1, said(done)
    assert "cannot write the checkpoint of step 40" in said(done) and "No space left on device" in said(done)
    assert "the checkpoint of step 20 is intact" in said(done) and "Traceback" not in said(done)
    assert checkpoints(run) == ["step-00000020"]  # the partial .tmp folder is gone
    verify_checkpoint(run / "checkpoints" / "step-00000020")
    resume_and_compare(recipe, run, reference, "resumed from the checkpoint at step 20")


def test_a_full_disk_while_writing_the_store_resumes_it(recipe, reference, tmp_path):
    run = tmp_path / "run"
    done = with_fault("enospc-store", 2, "run", recipe, "--out", run)
    assert done.returncode == 1, said(done)
    assert "No space left on device" in said(done) and "Traceback" not in said(done)
    assert not (run / "activations.h5").exists()
    resume_and_compare(recipe, run, reference)
    assert_same_datasets(store_datasets(run / "activations.h5"), store_datasets(reference / "activations.h5"))


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])


def _garbage(path: Path) -> None:
    path.write_text('{"step": 60, "optimizer"')


@pytest.mark.parametrize("damage, file", [(_flip_a_byte, "model.safetensors"), (_truncate, "optimizer.safetensors"),
                                          (_garbage, "state.json")], ids=["flipped", "truncated", "cut-json"])
def test_a_corrupt_checkpoint_falls_back_to_the_one_before(recipe, reference, full_disk_runs, tmp_path, damage, file):
    run, done = copy_of(full_disk_runs, 60, tmp_path / "run")
    assert done.returncode == 1, said(done)
    assert checkpoints(run) == ["step-00000040", "step-00000060"]
    damage(run / "checkpoints" / "step-00000060" / file)
    flat = resume_and_compare(recipe, run, reference, "resumed from the checkpoint at step 40")
    assert f"{file} does not match its checksum" in flat and "moved to corrupt-step-00000060" in flat
    assert (run / "checkpoints" / "corrupt-step-00000060").is_dir()


def test_a_diverging_loss_stops_with_the_last_good_checkpoint_kept(recipe, reference, tmp_path):
    run = tmp_path / "run"
    done = with_fault("nan-weights", 50, "run", recipe, "--out", run)
    assert done.returncode == 1, said(done)
    assert "training diverged at step 50" in said(done) and "the checkpoint of step 40 is kept" in said(done)
    assert checkpoints(run) == ["step-00000020", "step-00000040"]
    assert all(bool(t.isfinite().all()) for t in load_file(run / "checkpoints" / "step-00000040" / "model.safetensors").values()
               if t.is_floating_point())
    resume_and_compare(recipe, run, reference, "resumed from the checkpoint at step 40")


def test_nonfinite_skip_leaves_the_bad_batch_out(recipe, tmp_path):
    run = tmp_path / "run"
    done = with_fault("nan-loss", 50, "run", recipe, "--out", run, "--set", "train.nonfinite=skip")
    assert done.returncode == 0, said(done)
    assert "step 50: non-finite loss" in said(done) and "batch skipped" in said(done)
    assert all(bool(t.isfinite().all()) for t in model_tensors(run).values() if t.is_floating_point())


def test_resuming_with_a_changed_recipe_shows_the_difference(recipe, full_disk_runs, tmp_path):
    run, _ = copy_of(full_disk_runs, 20, tmp_path / "run")
    refused = run_cli("run", recipe, "--out", run, "--set", "train.lr=0.002", "--set", "train.steps=120")
    assert refused.code == 2, refused.output
    assert "train.steps: 160 → 120" in refused.flat and "train.lr: (absent) → 0.002" in refused.flat
    assert "--force" in refused.flat
    forced = run_cli("run", recipe, "--out", run, "--set", "train.lr=0.002", "--set", "train.steps=120", "--force")
    assert forced.code == 0, forced.output
    assert "resumed from the checkpoint at step 20" in forced.flat
    assert "lr: 0.002" in (run / "recipe.yaml").read_text()
