"""The CUDA paths (skipped without a GPU; CI has none, the project's device machine runs them):
fast and dense paths agree on the GPU, the GPU agrees with the CPU, and training with
bfloat16/float16 autocast and pinned prefetch keeps parameters, thresholds and EMAs float32."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig
from hsae.recipe.schema import TrainConfig
from hsae.run.run_dir import RunDir
from hsae.store import ActivationStore, StoreWriter
from hsae.train.trainer import Trainer

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

LEVELS = [{"n_latents": 256, "encoder": {"name": "topk", "k": 4, "aux_k": 8, "dead_after": 1}},
          {"n_latents": 64, "encoder": {"name": "topk", "k": 1}, "lambda": 0.5},
          {"n_latents": 16, "encoder": {"name": "batchtopk", "k": 1}, "lambda": 0.5}]


def step(device: str, fast: bool, mode: str, seed: int = 0):
    torch.manual_seed(seed)
    cascade = Cascade(32, CascadeConfig(levels=LEVELS, stop_gradient=mode)).to(device).train()
    for sae in cascade.levels.values():
        sae.fast_path = fast
    x = torch.randn(512, 32, generator=torch.Generator().manual_seed(seed + 1)).to(device)
    out = cascade(x, step=0)
    out.loss.backward()
    grads = {name: p.grad.detach().cpu() for name, p in cascade.named_parameters() if p.grad is not None}
    return out, grads


def assert_close(a: torch.Tensor, b: torch.Tensor, rel: float) -> None:
    assert a.shape == b.shape
    assert (a - b).abs().max() <= rel * b.abs().max() + 1e-6


@pytest.mark.parametrize("mode", ["none", "bilateral"])
def test_fast_and_dense_paths_agree_on_cuda(mode):
    fast, fast_grads = step("cuda", True, mode)
    dense, dense_grads = step("cuda", False, mode)
    assert fast.levels[0].code.sparse is not None and dense.levels[0].code.sparse is None
    assert_close(fast.loss.cpu(), dense.loss.cpu(), 1e-5)
    assert fast_grads.keys() == dense_grads.keys()
    for name in fast_grads:
        assert_close(fast_grads[name], dense_grads[name], 1e-4)


def test_cuda_step_agrees_with_cpu_step():
    gpu, gpu_grads = step("cuda", True, "none")
    cpu, cpu_grads = step("cpu", True, "none")
    assert_close(gpu.loss.cpu(), cpu.loss, 1e-5)
    for a, b in zip(gpu.levels, cpu.levels):
        assert (a.n_inputs, a.n_active) == (b.n_inputs, b.n_active)
    for name in cpu_grads:
        assert_close(gpu_grads[name], cpu_grads[name], 1e-4)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "acts.h5"
    rows = np.random.default_rng(0).standard_normal((4096, 32)).astype(np.float32)
    with StoreWriter(path, width=32) as writer:
        writer.append(rows)
        writer.finish()
    return path


@pytest.mark.parametrize("precision", ["float32", "bfloat16", "float16"])
def test_training_on_cuda_with_autocast_and_pinned_prefetch(store_path, tmp_path, precision):
    model = CascadeConfig(levels=[{"n_latents": 256, "encoder": {"name": "topk", "k": 4}},
                                  {"n_latents": 32, "encoder": {"name": "batchtopk", "k": 1}}])
    cfg = TrainConfig(steps=200, batch_size=256, warmup_steps=5, checkpoint_every=100, log_every=1,
                      device="cuda", precision=precision, prefetch=2)
    with ActivationStore(store_path) as store:
        cascade = Trainer(model, cfg, store, RunDir(tmp_path)).fit().cascade
    log = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert all(np.isfinite(line["loss"]) for line in log)
    assert log[-1]["levels"]["1"]["fvu"] < 0.8 * log[0]["levels"]["1"]["fvu"]
    assert all(t.device.type == "cuda" for t in cascade.state_dict().values())
    assert all(t.dtype in (torch.float32, torch.long, torch.bool) for t in cascade.state_dict().values())
