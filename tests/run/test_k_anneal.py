"""k annealing (spec §9): the k of every step follows the schedule, the encoders keep ⌈k(step)·B⌉
(BatchTopK) or ⌈k(step)⌉ per row (TopK) entries, and a run killed mid-schedule resumes it exactly."""

from __future__ import annotations

import json
import math

import pytest
import torch

from hsae import registry
from hsae_plugins.encoders.k_anneal import KAnneal, annealed_k

from runkit import assert_same_tensors, model_tensors, run_cli, small_recipe, write_recipe
from test_resume import interrupt_when, past_checkpoint, start

ANNEAL = {"start": "d", "fraction": 0.5}
STEPS, WIDTH = 300, 32


def test_schedule_values():
    anneal = KAnneal(start="d", fraction=0.1)
    # 1000 steps: k goes linearly from d = 64 to 4 over steps 0..100, then stays at 4
    assert annealed_k(4, anneal, 64, 0, 1000) == 64.0
    assert annealed_k(4, anneal, 64, 50, 1000) == pytest.approx(34.0)
    assert annealed_k(4, anneal, 64, 100, 1000) == 4.0
    assert annealed_k(4, anneal, 64, 999, 1000) == 4.0
    assert annealed_k(4, KAnneal(start=10, fraction=0.5), 64, 25, 100) == pytest.approx(7.0)
    assert annealed_k(4, None, 64, 0, 1000) == 4.0


@pytest.mark.parametrize("name", ["batchtopk", "topk"])
def test_the_encoder_keeps_the_scheduled_number_of_entries(name):
    encoder = registry.create("hsae.encoders", {"name": name, "k": 2, "k_anneal": ANNEAL}, n_inputs=16, n_latents=40)
    pre = torch.rand(8, 40) + 0.1  # every entry positive: exactly the budget is kept
    encoder.train()
    for step, steps in ((0, 100), (10, 100), (30, 100), (60, 100)):
        k = encoder.at_step(step, steps)["k"]
        assert k == pytest.approx(annealed_k(2, KAnneal(**ANNEAL), 16, step, steps))
        kept = int((encoder.encode(pre, torch.zeros(40), torch.ones(40)).z > 0).sum())
        assert kept == (math.ceil(k * 8) if name == "batchtopk" else 8 * math.ceil(k))
    encoder.eval()  # inference uses the target k (TopK) or the threshold (BatchTopK), never the schedule
    if name == "topk":
        assert int((encoder.encode(pre, torch.zeros(40), torch.ones(40)).z > 0).sum()) == 8 * 2


def _anneal_recipe() -> dict:
    recipe = small_recipe(train={"steps": STEPS, "batch_size": 64, "checkpoint_every": 50, "log_every": 1})
    recipe["data"]["dataset"]["width"] = WIDTH
    for level, k in zip(recipe["model"]["levels"], (4, 1)):
        level["encoder"] = {"name": "batchtopk", "k": k, "k_anneal": ANNEAL}
    return recipe


def _logged_k(run_dir) -> dict[int, dict[str, float]]:
    lines = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return {line["step"]: {name: v["k"] for name, v in line["schedule"].items()} for line in lines}


def test_k_follows_the_schedule_across_a_kill_and_resume(tmp_path):
    path = write_recipe(tmp_path / "anneal.yaml", _anneal_recipe())
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run_cli("run", path, "--out", whole).code == 0

    process = start(["run", path, "--out", killed], tmp_path / "killed.log")
    interrupt_when(process, past_checkpoint(killed, 50))  # killed in the middle of the schedule
    assert not (killed / "model.safetensors").exists()
    resumed = run_cli("run", path, "--out", killed)
    assert resumed.code == 0 and "resumed from the checkpoint" in resumed.output

    logged = _logged_k(killed)
    assert sorted(logged) == list(range(STEPS))
    anneal = KAnneal(**ANNEAL)
    for step in (0, 1, 49, 50, 51, 100, 149, 150, 299):
        assert logged[step]["levels.1.encoder"] == pytest.approx(annealed_k(4, anneal, WIDTH, step, STEPS))
        assert logged[step]["levels.2.encoder"] == pytest.approx(annealed_k(1, anneal, WIDTH, step, STEPS))
    assert logged == _logged_k(whole)
    assert_same_tensors(model_tensors(killed), model_tensors(whole))
