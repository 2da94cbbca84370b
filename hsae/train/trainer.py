"""Training a cascade on an activation store: one Adam over all levels (Eq. 10/25), warm-up
and decay, gradient clipping, unit-norm decoders, metrics.jsonl, resumable checkpoints.

A run resumed from a checkpoint continues the same batch stream and RNG state, so on CPU it
ends bit-identical to an uninterrupted run with the same seed. Throughput options: mixed
precision (``train.precision``), ``torch.compile`` (``train.compile``) and batches read ahead in
a background thread (``train.prefetch``); docs/performance.md.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from typing import Callable

import torch

from hsae.cascade.cascade import Cascade, CascadeOutput
from hsae.cascade.config import CascadeConfig
from hsae.run_dir import RunDir
from hsae.recipe.schema import TrainConfig
from hsae.store import ActivationStore
from hsae.store.prefetch import Prefetcher
from hsae.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from hsae.train.schedule import lr_multiplier

StepCallback = Callable[[int, dict | None], None]
"""Called after every step as ``callback(step, metrics)``; metrics is None between log lines."""

SCALE_ROWS = 8192


def global_scale(store: ActivationStore) -> float:
    """Factor c with E||c·x||² = d, estimated on the store's first rows (deterministic)."""
    x = torch.as_tensor(store.rows(0, min(store.n_rows, SCALE_ROWS)), dtype=torch.float64)
    mean_sq = float(x.pow(2).sum(1).mean())
    return (store.width / mean_sq) ** 0.5 if mean_sq > 0 else 1.0


def step_metrics(step: int, lr: float, out: CascadeOutput, cascade: Cascade, dead_window: int) -> dict:
    """One line of metrics.jsonl."""
    levels = {}
    for lv in out.levels:
        levels[str(lv.level)] = {
            "loss": float(lv.loss.detach()), "weight": lv.weight, "fvu": float(lv.fvu), "l0": float(lv.l0),
            "dead": cascade.monitors[str(lv.level)].dead_fraction(dead_window),
            "n_inputs": lv.n_inputs, "n_active": lv.n_active,
        }
    return {"step": step, "loss": float(out.loss.detach()), "lr": lr, "levels": levels}


def autocast(cfg: TrainConfig):
    """The forward pass's mixed precision (``train.precision``); parameters, optimizer state,
    thresholds and EMAs stay float32."""
    if cfg.precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(cfg.device).type, dtype=getattr(torch, cfg.precision))


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, step: int,
               cfg: TrainConfig, params: list[torch.Tensor],
               scaler: torch.amp.GradScaler | None = None) -> CascadeOutput:
    """One optimizer step on the (scaled) batch ``x`` at the optimizer's current rates: joint loss
    (Eq. 10/25), backward, decoder-parallel gradient removal, clipping, Adam, renormalisation.
    ``scaler`` scales the loss for float16."""
    optimizer.zero_grad(set_to_none=True)
    with autocast(cfg):
        out = model(x, step)
    (out.loss if scaler is None else scaler.scale(out.loss)).backward()
    if scaler is not None:
        scaler.unscale_(optimizer)
    model.after_backward()
    if cfg.grad_clip is not None:
        torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
    if scaler is None:
        optimizer.step()
    else:
        scaler.step(optimizer)
        scaler.update()
    model.after_step()
    return out


@dataclass
class TrainResult:
    cascade: Cascade
    scale: float
    resumed_from: int | None


class Trainer:
    """``build(width)`` makes the model to train (default: a Cascade of ``model``); any module
    with the Cascade's training methods will do (the baselines of ``hsae.methods``)."""

    def __init__(self, model: CascadeConfig, train: TrainConfig, store: ActivationStore, run: RunDir,
                 normalize: bool = True, build: Callable[[int], torch.nn.Module] | None = None):
        self.model_config, self.cfg, self.store, self.run = model, train, store, run
        self.normalize = normalize
        self.build = build or (lambda width: Cascade(width, self.model_config))

    def _build(self) -> tuple[Cascade, torch.optim.Optimizer]:
        torch.manual_seed(self.cfg.seed)
        cascade = self.build(self.store.width)
        cascade.reset_parameters(torch.Generator().manual_seed(self.cfg.seed))
        cascade.to(self.cfg.device).train()
        if self.cfg.compile:
            cascade.compile()
        optimizer = torch.optim.Adam(cascade.param_groups(self.cfg.lr), betas=self.cfg.betas)
        for group in optimizer.param_groups:
            group["base_lr"] = group["lr"]
        return cascade, optimizer

    def _resume(self, cascade: Cascade, optimizer: torch.optim.Optimizer,
                scaler: torch.amp.GradScaler | None) -> tuple[int, float | None]:
        path = latest_checkpoint(self.run.checkpoints)
        if path is None:
            self._truncate_log(0)  # lines of a run killed before its first checkpoint
            return 0, None
        ckpt = load_checkpoint(path)
        cascade.load_state_dict(ckpt.model)
        optimizer.load_state_dict(ckpt.optimizer)
        torch.set_rng_state(torch.tensor(ckpt.extra["rng"], dtype=torch.uint8))
        if scaler is not None and "scaler" in ckpt.extra:
            scaler.load_state_dict(ckpt.extra["scaler"])
        self._truncate_log(ckpt.step)
        return ckpt.step, ckpt.extra["scale"]

    def _truncate_log(self, step: int) -> None:
        """Drop metrics.jsonl lines of steps after the checkpoint (they will be logged again)."""
        if not self.run.log.exists():
            return
        kept = []
        for line in self.run.log.read_text().splitlines():
            try:
                if json.loads(line)["step"] < step:
                    kept.append(line)
            except (ValueError, KeyError):
                break  # a line cut by a kill: everything after it is redone
        tmp = self.run.log.with_name(self.run.log.name + ".tmp")  # a kill now must not lose the kept lines
        tmp.write_text("".join(l + "\n" for l in kept))
        os.replace(tmp, self.run.log)

    def fit(self, callback: StepCallback | None = None) -> TrainResult:
        cfg = self.cfg
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        cascade, optimizer = self._build()
        device = torch.device(cfg.device).type
        scaler = torch.amp.GradScaler(device) if cfg.precision == "float16" else None
        start, scale = self._resume(cascade, optimizer, scaler)
        resumed_from = start if start else None
        if scale is None:
            scale = global_scale(self.store) if self.normalize else 1.0
        batches = self.store.batches(cfg.batch_size, cfg.seed, start_step=start)
        if cfg.prefetch:
            batches = Prefetcher(batches, cfg.prefetch, pin_memory=device == "cuda")
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.run.root.mkdir(parents=True, exist_ok=True)
        with open(self.run.log, "a") as log, contextlib.closing(batches):
            for step in range(start, cfg.steps):
                x = next(batches).to(cfg.device, non_blocking=True) * scale
                factor = lr_multiplier(step, cfg.steps, cfg.warmup_steps, cfg.decay_start)
                for group in optimizer.param_groups:
                    group["lr"] = group["base_lr"] * factor
                out = train_step(cascade, optimizer, x, step, cfg, params, scaler)
                metrics = None
                if step % cfg.log_every == 0 or step == cfg.steps - 1:
                    metrics = step_metrics(step, cfg.lr * factor, out, cascade, cfg.dead_window)
                    log.write(json.dumps(metrics) + "\n")
                    log.flush()
                if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                    extra = {"scale": scale, "rng": torch.get_rng_state().tolist()}
                    if scaler is not None:
                        extra["scaler"] = scaler.state_dict()
                    save_checkpoint(self.run.checkpoints, step + 1, cascade, optimizer, extra, cfg.keep_checkpoints)
                if callback is not None:
                    callback(step, metrics)
        return TrainResult(cascade, scale, resumed_from)
