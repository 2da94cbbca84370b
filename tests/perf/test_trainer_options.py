"""Trainer throughput options: prefetch leaves results bit-identical, the lean memory mode gives
the fast mode's run, mixed precision and torch.compile train, and float16's loss scale survives a
resume."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hsae.cascade.config import CascadeConfig
from hsae.recipe.schema import TrainConfig
from hsae.run.run_dir import RunDir
from hsae.store import ActivationStore, StoreWriter
from hsae.train.trainer import Trainer

MODEL = CascadeConfig(levels=[{"n_latents": 64, "encoder": {"name": "topk", "k": 2}},
                              {"n_latents": 8, "encoder": {"name": "batchtopk", "k": 1}, "update_every": 2}])


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "acts.h5"
    rows = np.random.default_rng(0).standard_normal((600, 8)).astype(np.float32)
    with StoreWriter(path, width=8) as writer:
        writer.append(rows)
        writer.finish()
    return path


def fit(store_path, root, **options):
    cfg = TrainConfig(steps=12, batch_size=64, warmup_steps=2, checkpoint_every=5, log_every=1, **options)
    with ActivationStore(store_path) as store:
        result = Trainer(MODEL, cfg, store, RunDir(root)).fit()
    log = [json.loads(line) for line in (root / "metrics.jsonl").read_text().splitlines()]
    return result.cascade, log


def test_prefetch_gives_the_same_run_bit_for_bit(store_path, tmp_path):
    plain, plain_log = fit(store_path, tmp_path / "plain", prefetch=0)
    ahead, ahead_log = fit(store_path, tmp_path / "ahead", prefetch=3)
    assert plain_log == ahead_log
    for (name, a), b in zip(plain.state_dict().items(), ahead.state_dict().values()):
        assert torch.equal(a, b), name


def test_lean_memory_trains_the_same_run_as_fast(store_path, tmp_path):
    fast, fast_log = fit(store_path, tmp_path / "fast", memory="fast", grad_clip=1.0)
    lean, lean_log = fit(store_path, tmp_path / "lean", memory="lean", grad_clip=1.0)
    assert [line["step"] for line in lean_log] == [line["step"] for line in fast_log]
    np.testing.assert_allclose([line["loss"] for line in lean_log], [line["loss"] for line in fast_log],
                               rtol=1e-4)
    for (name, a), b in zip(fast.state_dict().items(), lean.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_trains_and_keeps_state_float32(store_path, tmp_path, precision):
    cascade, log = fit(store_path, tmp_path / precision, precision=precision)
    assert all(np.isfinite(line["loss"]) for line in log)
    assert log[-1]["levels"]["1"]["fvu"] < log[0]["levels"]["1"]["fvu"]
    assert all(t.dtype in (torch.float32, torch.long, torch.bool) for t in cascade.state_dict().values())


class Stop(Exception):
    pass


def stop_after(step):
    def callback(at, metrics):
        if at == step:
            raise Stop

    return callback


def test_a_float16_run_resumes_bit_identical_with_its_loss_scale(store_path, tmp_path):
    straight, _ = fit(store_path, tmp_path / "straight", precision="float16")
    cfg = TrainConfig(steps=12, batch_size=64, warmup_steps=2, checkpoint_every=5, log_every=1, precision="float16")
    with ActivationStore(store_path) as store:
        trainer = Trainer(MODEL, cfg, store, RunDir(tmp_path / "killed"))
        with pytest.raises(Stop):
            trainer.fit(stop_after(6))
        checkpoint = sorted((tmp_path / "killed" / "checkpoints").glob("step-*"))[-1]
        assert json.loads((checkpoint / "state.json").read_text())["extra"]["scaler"]["scale"] > 0
        resumed = trainer.fit()
    assert resumed.resumed_from == 5
    for (name, a), b in zip(straight.state_dict().items(), resumed.cascade.state_dict().values()):
        assert torch.equal(a, b), name


def test_compile_trains_like_eager(store_path, tmp_path):
    eager, eager_log = fit(store_path, tmp_path / "eager")
    compiled, compiled_log = fit(store_path, tmp_path / "compiled", compile=True)
    assert [line["step"] for line in compiled_log] == [line["step"] for line in eager_log]
    assert np.allclose([line["loss"] for line in compiled_log], [line["loss"] for line in eager_log], rtol=1e-3)
