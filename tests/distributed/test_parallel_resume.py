"""``kill -9`` of one process of ``hsae run --nproc 2``, then the same command again: the run
resumes from the last checkpoint (rank 0 wrote it, every process reads it) and ends with
weights and logs bit-identical to an uninterrupted two-process run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from safetensors.torch import load_file

from hsae.train.checkpoint import latest_checkpoint

from launch import env, run

GIVE_UP = 900  # seconds: a guard against hanging on a busy machine, not a measurement

RECIPE = {
    "name": "two_processes",
    "data": {"dataset": {"name": "synthetic_hierarchy", "n_samples": 3000, "width": 32, "seed": 2}},
    "model": {"stop_gradient": "none", "levels": [
        {"n_latents": 64, "encoder": {"name": "batchtopk", "k": 4}},
        {"n_latents": 16, "encoder": {"name": "topk", "k": 1, "aux_k": 1, "dead_after": 2000}, "usage_coef": 0.5,
         "start_step": 50}]},
    "train": {"steps": 600, "batch_size": 64, "warmup_steps": 20, "checkpoint_every": 100, "log_every": 10,
              "threads": 1},
    "eval": {"backbone": {"name": "precomputed"}},
}


def hsae(*args) -> list[str]:
    return [sys.executable, "-m", "hsae", *map(str, args)]


def workers(root: int) -> list[int]:
    """The pids of the processes torchrun started under ``root`` (its descendants running hsae)."""
    parents = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            parents[int(entry.name)] = (int(stat.rsplit(")", 1)[1].split()[1]), cmdline)
    found, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        for child, (parent, cmdline) in parents.items():
            if parent == pid:
                frontier.append(child)
                if b"hsae" in cmdline and b"torch.distributed.run" not in cmdline:
                    found.append(child)
    return found


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds the worker processes through /proc")
def test_kill_one_process_then_rerun_ends_bit_identical(tmp_path):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(RECIPE))
    run(hsae("run", recipe, "--nproc", 2, "--out", tmp_path / "whole"), timeout=GIVE_UP)

    with open(tmp_path / "killed.log", "w") as log:
        parent = subprocess.Popen(hsae("run", recipe, "--nproc", 2, "--out", tmp_path / "cut"), env=env(),
                                  stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + GIVE_UP
    while latest_checkpoint(tmp_path / "cut" / "checkpoints") is None:
        assert parent.poll() is None, (tmp_path / "killed.log").read_text()
        assert time.monotonic() < deadline
        time.sleep(0.01)
    victims = workers(parent.pid)
    assert len(victims) == 2, victims
    os.kill(victims[-1], signal.SIGKILL)
    assert parent.wait(timeout=GIVE_UP) != 0
    cut_at = int(latest_checkpoint(tmp_path / "cut" / "checkpoints").name.split("-")[1])
    assert cut_at < RECIPE["train"]["steps"], "the run ended before the kill"

    again = run(hsae("run", recipe, "--nproc", 2, "--out", tmp_path / "cut"), timeout=GIVE_UP)
    assert "resumed from the checkpoint at step" in again.stdout
    whole = load_file(latest_checkpoint(tmp_path / "whole" / "checkpoints") / "model.safetensors")
    resumed = load_file(latest_checkpoint(tmp_path / "cut" / "checkpoints") / "model.safetensors")
    assert whole.keys() == resumed.keys()
    for name in whole:
        assert whole[name].equal(resumed[name]), name
    assert (tmp_path / "cut" / "metrics.jsonl").read_text() == (tmp_path / "whole" / "metrics.jsonl").read_text()
