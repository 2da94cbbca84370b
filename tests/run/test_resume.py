"""``kill -9`` on ``hsae run``, then ``hsae run`` again: it resumes and ends with exactly what an
uninterrupted run writes (weights, metrics.jsonl, metrics.json, the activation store)."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from pathlib import Path

import h5py
import pytest

from hsae import registry
from hsae.store.layout import parts_folder
from hsae.train.checkpoint import latest_checkpoint

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

POLL = 0.01
GIVE_UP = 300.0  # seconds: a guard against hanging, not a measurement

TRAIN = {"steps": 500, "batch_size": 64, "checkpoint_every": 100, "log_every": 10}


def start(args: list, output: Path) -> subprocess.Popen:
    """``hsae ARGS`` in a process of its own, stdout and stderr going to the file ``output``.
    Ctrl-C (SIGINT) raises KeyboardInterrupt in it as at a terminal, even where this test
    process was started with SIGINT ignored (a background job), which its children inherit."""
    command = cli_command(*args)
    command[2] = "import signal; signal.signal(signal.SIGINT, signal.default_int_handler); " + command[2]
    with open(output, "w") as sink:
        return subprocess.Popen(command, env=cli_env(), stdout=sink, stderr=subprocess.STDOUT)


def interrupt_when(process: subprocess.Popen, ready, sig: int = signal.SIGKILL) -> int:
    """Poll ``ready()`` while the process runs; send it ``sig`` as soon as it holds and
    return its exit status."""
    deadline = time.monotonic() + GIVE_UP
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"the run ended (exit {process.returncode}) before it could be interrupted")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the run never reached the point where it should be interrupted")
        time.sleep(POLL)
    process.send_signal(sig)
    return process.wait(timeout=GIVE_UP)


def logged_steps(run_dir: Path) -> list[int]:
    """Steps of the complete lines of metrics.jsonl (a line being written is left out)."""
    log = run_dir / "metrics.jsonl"
    if not log.exists():
        return []
    return [json.loads(line)["step"] for line in log.read_text().split("\n")[:-1]]


def checkpoint_step(run_dir: Path) -> int | None:
    path = latest_checkpoint(run_dir / "checkpoints")
    return None if path is None else int(path.name.split("-")[1])


def past_checkpoint(run_dir: Path, at_least: int):
    """Training has written a checkpoint of step ≥ ``at_least`` and logged a later step."""
    def ready() -> bool:
        step = checkpoint_step(run_dir)
        return step is not None and step >= at_least and any(s > step for s in logged_steps(run_dir))
    return ready


@pytest.mark.slow
def test_killed_training_resumes_bit_identical(tmp_path):
    recipe = write_recipe(tmp_path / "small.yaml", small_recipe(train=TRAIN))
    reference, killed = tmp_path / "reference", tmp_path / "killed"
    assert run_cli("run", recipe, "--out", reference).code == 0

    status = interrupt_when(start(["run", recipe, "--out", killed], tmp_path / "1.txt"), past_checkpoint(killed, 100))
    assert status == -signal.SIGKILL
    first = checkpoint_step(killed)
    assert first < TRAIN["steps"] and not (killed / "model.safetensors").exists()
    # interrupted again (Ctrl-C this time) after the resumed run has written a checkpoint of its own
    status = interrupt_when(start(["run", recipe, "--out", killed], tmp_path / "2.txt"),
                            past_checkpoint(killed, first + 100), signal.SIGINT)
    assert status == 130
    said = " ".join((tmp_path / "2.txt").read_text().split())
    assert "stopped by SIGINT after step" in said and "Traceback" not in said
    assert "`hsae run` again resumes from the last checkpoint" in said
    second = checkpoint_step(killed)
    assert second < TRAIN["steps"]
    assert second == int(said.split("stopped by SIGINT after step ")[1].split(",")[0]) + 1  # at the step boundary

    result = run_cli("run", recipe, "--out", killed)
    assert result.code == 0, result.output
    assert f"resumed from the checkpoint at step {second}" in result.flat

    assert_same_tensors(model_tensors(killed), model_tensors(reference))
    assert (killed / "metrics.jsonl").read_bytes() == (reference / "metrics.jsonl").read_bytes()
    assert json.loads((killed / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())


def store_rows(run_dir: Path) -> int:
    state = parts_folder(run_dir / "activations.h5") / "state.json"
    try:
        return json.loads(state.read_text())["rows"]
    except (OSError, ValueError):
        return 0


def attributes(path: Path) -> dict:
    with h5py.File(path, "r") as file:
        return {key: file.attrs[key] for key in file.attrs}


@pytest.mark.slow
def test_killed_store_writing_resumes_to_the_same_store(tmp_path):
    dataset = {"name": "synthetic_hierarchy", "n_samples": 60_000, "width": 32, "seed": 3}
    tree = small_recipe(data={"dataset": dataset}, eval={"backbone": None},
                        train={"steps": 20, "checkpoint_every": 10, "log_every": 5})
    recipe = write_recipe(tmp_path / "big.yaml", tree)
    killed = tmp_path / "killed"

    status = interrupt_when(start(["run", recipe, "--out", killed], tmp_path / "out.txt"),
                            lambda: store_rows(killed) >= 4096)
    assert status == -signal.SIGKILL
    assert not (killed / "activations.h5").exists(), "the store was finished before the kill"
    assert store_rows(killed) < dataset["n_samples"]

    result = run_cli("run", recipe, "--out", killed)
    assert result.code == 0, result.output
    assert not parts_folder(killed / "activations.h5").exists()

    uninterrupted = tmp_path / "uninterrupted.h5"
    registry.create("hsae.datasets", dataset).write_store(uninterrupted)
    assert_same_datasets(store_datasets(killed / "activations.h5"), store_datasets(uninterrupted))
    found, expected = attributes(killed / "activations.h5"), attributes(uninterrupted)
    assert found.keys() == expected.keys()
    assert all(str(found[key]) == str(expected[key]) for key in expected)


def test_log_of_a_run_killed_before_its_first_checkpoint_is_written_anew(tmp_path, finished_run):
    """No checkpoint yet: training starts over, and metrics.jsonl with it (a cut last line too)."""
    recipe = write_recipe(tmp_path / "small.yaml", small_recipe())
    killed = tmp_path / "killed"
    killed.mkdir()
    lines = (finished_run / "metrics.jsonl").read_text().splitlines()
    (killed / "metrics.jsonl").write_text("".join(line + "\n" for line in lines[:4]) + lines[4][:25])

    assert run_cli("run", recipe, "--out", killed).code == 0
    assert (killed / "metrics.jsonl").read_bytes() == (finished_run / "metrics.jsonl").read_bytes()
    assert_same_tensors(model_tensors(killed), model_tensors(finished_run))


def test_a_checkpoint_of_an_earlier_version_without_checksums_is_resumed(tmp_path, finished_run):
    """Checkpoints written before checksums.json existed are read as they are."""
    recipe = write_recipe(tmp_path / "small.yaml", small_recipe())
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    for name in ("model.safetensors", "config.json", "metrics.json", "hierarchy.json"):
        (run / name).unlink()
    last = latest_checkpoint(run / "checkpoints")
    (last / "checksums.json").unlink()
    result = run_cli("run", recipe, "--out", run)
    assert result.code == 0, result.output
    assert f"resumed from the checkpoint at step {int(last.name.split('-')[1])}" in result.flat
    assert_same_tensors(model_tensors(run), model_tensors(finished_run))
