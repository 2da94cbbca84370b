"""The learning-rate schedule (linear warm-up, constant, linear decay) as used by training,
and the checkpoints a run keeps."""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import load_file

from hsae.recipe.schema import TrainConfig
from hsae.train.schedule import lr_multiplier

from runkit import model_tensors, run_cli, small_recipe, write_recipe


def test_schedule_values():
    # 100 steps, 10 of warm-up, decay from step 80 to zero at step 100
    assert [lr_multiplier(s, 100, 10, 0.8) for s in (0, 4, 9)] == [0.1, 0.5, 1.0]
    assert [lr_multiplier(s, 100, 10, 0.8) for s in (10, 50, 79)] == [1.0, 1.0, 1.0]
    assert [lr_multiplier(s, 100, 10, 0.8) for s in (80, 90, 99)] == [1.0, 0.5, 0.05]
    assert lr_multiplier(0, 100, 0, 0.8) == 1.0  # no warm-up
    assert lr_multiplier(99, 100, 10, 1.0) == 1.0  # no decay


@settings(max_examples=200, deadline=None)
@given(total=st.integers(1, 400), warmup=st.integers(0, 100), decay_start=st.floats(0, 1))
def test_schedule_shape(total, warmup, decay_start):
    """In (0, 1]; rising through the warm-up, then never rising; 1 between the two phases."""
    m = [lr_multiplier(s, total, warmup, decay_start) for s in range(total)]
    assert all(0 < v <= 1 for v in m)
    rise = m[:min(warmup, total)]
    assert rise == sorted(rise)
    after = m[warmup:]
    assert all(a >= b for a, b in zip(after, after[1:]))
    decay_from = int(decay_start * total)
    assert all(v == 1 for v in m[warmup:decay_from])
    if warmup <= decay_from < total:
        assert m[-1] == pytest.approx(1 / (total - decay_from))


def test_training_uses_the_schedule(finished_run):
    """metrics.jsonl logs train.lr · m(step) at every logged step."""
    train = TrainConfig(**small_recipe()["train"])
    for line in (finished_run / "metrics.jsonl").read_text().splitlines():
        logged = json.loads(line)
        m = lr_multiplier(logged["step"], train.steps, train.warmup_steps, train.decay_start)
        assert logged["lr"] == pytest.approx(train.lr * m, rel=1e-12)


def test_each_level_rate_follows_the_schedule(tmp_path):
    """The optimizer's rate per level (its own lr, or train.lr) times m(step), read back from
    the checkpoints: each holds the rate of the last step taken before it."""
    recipe = small_recipe(train={"steps": 40, "warmup_steps": 10, "decay_start": 0.5, "lr": 2.0e-3,
                                 "checkpoint_every": 5, "keep_checkpoints": 8})
    recipe["model"]["levels"][1]["lr"] = 5.0e-4
    out = tmp_path / "run"
    assert run_cli("run", write_recipe(tmp_path / "r.yaml", recipe), "--out", out).code == 0
    for step in range(5, 41, 5):
        state = json.loads((out / "checkpoints" / f"step-{step:08d}" / "state.json").read_text())
        groups = state["optimizer"]["param_groups"]
        m = lr_multiplier(step - 1, 40, 10, 0.5)
        assert [g["base_lr"] for g in groups] == [2.0e-3, 5.0e-4]
        assert [g["lr"] for g in groups] == pytest.approx([2.0e-3 * m, 5.0e-4 * m], rel=1e-12)


@pytest.mark.parametrize("keep", [1, 3])
def test_checkpoint_retention(tmp_path, keep):
    recipe = small_recipe(train={"steps": 100, "checkpoint_every": 20, "keep_checkpoints": keep})
    out = tmp_path / "run"
    assert run_cli("run", write_recipe(tmp_path / "r.yaml", recipe), "--out", out).code == 0

    folders = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert folders == [f"step-{s:08d}" for s in (100, 80, 60)[:keep][::-1]]
    last = out / "checkpoints" / "step-00000100"
    assert sorted(p.name for p in last.iterdir()) == ["checksums.json", "model.safetensors", "optimizer.safetensors", "state.json"]
    assert json.loads((last / "state.json").read_text())["step"] == 100
    # the final checkpoint holds the saved model (plus the cascade's training-only buffers)
    checkpoint, final = load_file(last / "model.safetensors"), model_tensors(out)
    assert all(torch.equal(checkpoint[name], tensor) for name, tensor in final.items())
    assert set(checkpoint) - set(final) == {name for name in checkpoint if not name.startswith("levels.")}
