"""Training a cascade on an activation store: one Adam over all levels (Eq. 10/25), warm-up
and decay, gradient clipping, unit-norm decoders, metrics.jsonl, resumable checkpoints.

A run resumed from a checkpoint continues the same batch stream and RNG state, so on CPU it
ends bit-identical to an uninterrupted run with the same seed. Runs that read the same batches
(a sweep's variants) can be trained together in one pass over the store (:func:`fit_together`);
a single run is such a pass with one model. Throughput options: mixed
precision (``train.precision``), ``torch.compile`` (``train.compile``) and batches read ahead in
a background thread (``train.prefetch``); docs/performance.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
from dataclasses import dataclass
from typing import Callable

import torch

from hsae import distributed
from hsae.cascade.cascade import Cascade, CascadeOutput
from hsae.cascade.config import CascadeConfig
from hsae.errors import BadInput, HsaeError, Interrupted
from hsae.interfaces.encoder import Encoder
from hsae.interfaces.data_parallel import average_, is_split, rows_split_over
from hsae.run.run_dir import RunDir
from hsae.recipe.schema import TrainConfig
from hsae.store import ActivationStore
from hsae.store.prefetch import Prefetcher
from hsae.train import stop
from hsae.train.checkpoint import resume_point, save_checkpoint
from hsae.train.device import train_device
from hsae.train.lean_step import lean_train_step, takes_lean_step
from hsae.train.memory_budget import check_fits
from hsae.train.nonfinite import all_finite, loss_finite, skips_batch
from hsae.train.precision import autocast
from hsae.train.schedule import lr_multiplier

StepCallback = Callable[[int, dict | None], None]
"""Called after every step as ``callback(step, metrics)``; metrics is None between log lines."""

SCALE_ROWS = 8192


def global_scale(store: ActivationStore, normalize: bool | str = True) -> float:
    """Factor c with E||c·x||² = d (``normalize`` true or 'width') or = 1 ('unit', the paper's,
    spec §9), estimated on the store's first rows (deterministic); 1 when ``normalize`` is false."""
    if normalize is False:
        return 1.0
    x = torch.as_tensor(store.rows(0, min(store.n_rows, SCALE_ROWS)), dtype=torch.float64)
    mean_sq = float(x.pow(2).sum(1).mean())
    target = 1.0 if normalize == "unit" else store.width
    return (target / mean_sq) ** 0.5 if mean_sq > 0 else 1.0


def scheduled_values(model: torch.nn.Module, step: int, steps: int) -> dict[str, dict[str, float]]:
    """Set every encoder's step-dependent schedule for ``step`` (:meth:`Encoder.at_step`); the
    values set, by the encoder's module name (e.g. ``levels.1.encoder``)."""
    values = {}
    for name, module in model.named_modules():
        if isinstance(module, Encoder) and (scheduled := module.at_step(step, steps)):
            values[name] = scheduled
    return values


def step_metrics(step: int, lr: float, out: CascadeOutput, cascade: Cascade, dead_window: int) -> dict:
    """One line of metrics.jsonl; losses, FVU and L0 averaged over the processes of a
    data-parallel run (each a mean over equal slices of the batch, their average is the whole
    batch's)."""
    figures = [out.loss.detach()] + [f for lv in out.levels for f in (lv.loss.detach(), lv.fvu, lv.l0)]
    figures = average_(torch.stack([f.double() for f in figures])).tolist()
    levels = {}
    for i, lv in enumerate(out.levels):
        loss, fvu, l0 = figures[1 + 3 * i:4 + 3 * i]
        levels[str(lv.level)] = {
            "loss": loss, "weight": lv.weight, "fvu": fvu, "l0": l0,
            "dead": cascade.monitors[str(lv.level)].dead_fraction(dead_window),
            "n_inputs": lv.n_inputs, "n_active": lv.n_active,
        }
    return {"step": step, "loss": figures[0], "lr": lr, "levels": levels}


def train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, step: int,
               cfg: TrainConfig, params: list[torch.Tensor],
               scaler: torch.amp.GradScaler | None = None) -> CascadeOutput:
    """One optimizer step on the (scaled) batch ``x`` at the optimizer's current rates: joint loss
    (Eq. 10/25), backward, decoder-parallel gradient removal, clipping, Adam, renormalisation.
    ``scaler`` scales the loss for float16. Where ``train.memory`` picks it
    (:func:`hsae.train.lean_step.takes_lean_step`), the lean step does the same with less memory.
    Inside :func:`hsae.interfaces.data_parallel.rows_split_over`, ``x`` is this process's slice
    of the batch and the gradients are averaged over the processes after the backward."""
    if takes_lean_step(cfg, params):
        return lean_train_step(model, optimizer, x, step, cfg, params, scaler)
    optimizer.zero_grad(set_to_none=True)
    with autocast(cfg):
        out = model(x, step)
    if not out.loss.requires_grad or skips_batch(cfg, out.loss):  # frozen levels only, or a skipped batch
        return out
    (out.loss if scaler is None else scaler.scale(out.loss)).backward()
    if is_split():
        distributed.average_gradients(params)
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
    device: str  # the device it trained on ('auto' resolved)
    notes: list[str]  # checkpoints passed over on resume, batches skipped


def scales_activations(model: CascadeConfig, normalize: bool | str) -> bool | str:
    """How training scales activations: ``data.normalize`` (see :func:`global_scale`), unless
    level 1 is an imported SAE, which reads raw activations."""
    return False if model.imported else normalize


def batch_stream(train: TrainConfig, normalize: bool | str) -> tuple:
    """What decides a run's batches and how they are fed: runs on one store with equal streams
    read the identical batches, so they can be trained together (:func:`fit_together`)."""
    return train.batch_size, train.seed, train.steps, normalize, train.device, train.threads


class Trainer:
    """``build(width)`` makes the model to train (default: a Cascade of ``model``); any module
    with the Cascade's training methods will do (the baselines of ``hsae.methods``)."""

    def __init__(self, model: CascadeConfig, train: TrainConfig, store: ActivationStore, run: RunDir,
                 normalize: bool | str = True, build: Callable[[int], torch.nn.Module] | None = None):
        self.model_config, self.store, self.run = model, store, run
        self.cfg = train.model_copy(update={"device": str(train_device(train))})  # 'auto' resolved
        self.normalize = scales_activations(model, normalize)
        self.build = build or (lambda width: Cascade(width, self.model_config))

    @property
    def batch_stream(self) -> tuple:
        return batch_stream(self.cfg, self.normalize)

    def fit(self, callback: StepCallback | None = None) -> TrainResult:
        return fit_together([self], callback)[0]

    def _build(self) -> tuple[Cascade, torch.optim.Optimizer]:
        check_fits(self.model_config, self.store.width, self.cfg.batch_size, self.cfg.device)
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
                scaler: torch.amp.GradScaler | None) -> tuple[int, float | None, list[str]]:
        """(step, scale, notes) of the newest sound checkpoint, loaded into the arguments;
        (0, None, notes) when there is none. The processes of a data-parallel run agree on it."""
        ckpt, notes = resume_point(self.run.checkpoints)
        distributed.agree(0 if ckpt is None else ckpt.step, "the checkpoint to resume from")
        if ckpt is None:
            self._truncate_log(0)  # lines of a run killed before its first checkpoint
            return 0, None, notes
        try:
            cascade.load_state_dict(ckpt.model)
            optimizer.load_state_dict(ckpt.optimizer)
            rng = torch.tensor(ckpt.extra["rng"], dtype=torch.uint8)
            scale = float(ckpt.extra["scale"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"the checkpoint of step {ckpt.step} in {self.run.checkpoints} does not fit this "
                           f"recipe's model ({' '.join(str(exc).split())[:300]}); pass --fresh to start over") from None
        torch.set_rng_state(rng)
        if scaler is not None and "scaler" in ckpt.extra:
            scaler.load_state_dict(ckpt.extra["scaler"])
        self._truncate_log(ckpt.step)
        return ckpt.step, scale, notes

    def _truncate_log(self, step: int) -> None:
        """Drop metrics.jsonl lines of steps after the checkpoint (they will be logged again);
        the first process of a data-parallel run writes the log."""
        if not distributed.is_main() or not self.run.log.exists():
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


class _Member:
    """A trainer's model in training: its optimizer, loss scaler, metrics.jsonl, checkpoints and
    its own torch RNG state, which is swapped in for each of its steps (so that models trained
    together draw the random numbers each would draw alone)."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer
        cfg = trainer.cfg
        self.model, self.optimizer = trainer._build()
        self.scaler = torch.amp.GradScaler(torch.device(cfg.device).type) if cfg.precision == "float16" else None
        self.start, self.scale, self.notes = trainer._resume(self.model, self.optimizer, self.scaler)
        self.rng = torch.get_rng_state()
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.log = None
        self.saved_at = self.start  # the step of the newest checkpoint

    def open_log(self, stack: contextlib.ExitStack) -> None:
        if not distributed.is_main():
            return
        self.trainer.run.root.mkdir(parents=True, exist_ok=True)
        self.log = stack.enter_context(open(self.trainer.run.log, "a"))

    def step(self, x: torch.Tensor, step: int) -> dict | None:
        """Train on the batch ``x`` (before scaling; this process's slice of it in a data-parallel
        run) at ``step``; the metrics logged, if any. Only the first process writes."""
        cfg, model, optimizer = self.trainer.cfg, self.model, self.optimizer
        torch.set_rng_state(self.rng)
        factor = lr_multiplier(step, cfg.steps, cfg.warmup_steps, cfg.decay_start)
        for group in optimizer.param_groups:
            group["lr"] = group["base_lr"] * factor
        buffers = self._buffers() if cfg.nonfinite == "skip" else None
        schedule = scheduled_values(model, step, cfg.steps)
        metrics = None
        with rows_split_over(distributed.group()):
            out = train_step(model, optimizer, x * self.scale, step, cfg, self.params, self.scaler)
            logged = step % cfg.log_every == 0 or step == cfg.steps - 1
            # every step on the CPU; on a GPU only where the host waits anyway (a log line), as the
            # weights are checked before every checkpoint
            if (buffers is not None or logged or x.device.type == "cpu") and not loss_finite(out.loss):
                self._nonfinite(step, out, buffers)
            if logged:
                metrics = step_metrics(step, cfg.lr * factor, out, model, cfg.dead_window)
                if schedule:
                    metrics["schedule"] = schedule
        if metrics is not None and self.log is not None:
            self.log.write(json.dumps(metrics) + "\n")
            self.log.flush()
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            self.save(step + 1)
        self.rng = torch.get_rng_state()
        return metrics

    def _buffers(self) -> dict[str, torch.Tensor]:
        """Copies of the model's buffers (firing counters, thresholds), which a forward pass
        updates: a skipped batch must leave no trace."""
        return {name: b.detach().clone() for name, b in self.model.named_buffers()}

    def _nonfinite(self, step: int, out: CascadeOutput, buffers: dict[str, torch.Tensor] | None) -> None:
        """A NaN or infinite loss at ``step``: skipped (``train.nonfinite: skip``; the forward
        pass's buffer updates undone) or the end of the run, the last checkpoint kept."""
        losses = ", ".join(f"level {lv.level} {float(lv.loss.detach()):g}" for lv in out.levels)
        if buffers is not None:
            with torch.no_grad():
                for name, b in self.model.named_buffers():
                    b.copy_(buffers[name])
            self.notes.append(f"step {step}: non-finite loss ({losses}); batch skipped")
            return
        raise HsaeError(f"{self.trainer.run.root}: training diverged at step {step}: the loss is not finite "
                        f"({losses}); {self._kept()}; lower train.lr or set train.nonfinite: skip (with --force), "
                        "or start over with --fresh")

    def _kept(self) -> str:
        if self.saved_at == 0:
            return "there is no checkpoint yet, so `hsae run` starts over"
        return f"the checkpoint of step {self.saved_at} is kept and `hsae run` resumes from it"

    def save(self, steps_done: int) -> None:
        """A checkpoint after ``steps_done`` steps, refused when a weight is not finite."""
        cfg = self.trainer.cfg
        if not all_finite(self.params):
            raise HsaeError(f"{self.trainer.run.root}: a weight is NaN or infinite after step {steps_done - 1}; "
                            f"{self._kept()}; lower train.lr (with --force) or start over with --fresh")
        extra = {"scale": self.scale, "rng": torch.get_rng_state().tolist()}
        if self.scaler is not None:
            extra["scaler"] = self.scaler.state_dict()
        if distributed.is_main():  # every process holds the same model; the first one writes
            save_checkpoint(self.trainer.run.checkpoints, steps_done, self.model, self.optimizer, extra,
                            cfg.keep_checkpoints)
        self.saved_at = steps_done


def fit_together(trainers: list[Trainer], callback: StepCallback | None = None) -> list[TrainResult]:
    """Train the trainers' models in one pass over their store: each batch is read once and
    every model takes its step on it in turn, with its own optimizer, schedule, metrics.jsonl,
    checkpoints and RNG state, so each ends as it would trained alone (bit-identical on CPU).

    The trainers need one store and equal :attr:`Trainer.batch_stream`. Each resumes from its
    own latest checkpoint; the pass starts at the earliest of them and a model skips the steps
    it has already made. ``callback`` sees every step of the pass, with the model's metrics when
    there is one trainer (None otherwise). The global scale is estimated once.

    Launched as several processes (:mod:`hsae.distributed`), each trains on its slice of
    every batch with gradients averaged, so all hold the same model; the first one writes."""
    if not trainers:
        raise ValueError("fit_together needs at least one trainer")
    first = trainers[0]
    if any(t.store is not first.store or t.batch_stream != first.batch_stream for t in trainers):
        raise ValueError("models trained together need one store and the same batch stream")
    cfg = first.cfg
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    members = [_Member(trainer) for trainer in trainers]
    if any(member.scale is None for member in members):
        scale = global_scale(first.store, first.normalize)
        for member in members:
            member.scale = scale if member.scale is None else member.scale
    start = min(member.start for member in members)
    distributed.check_batch(cfg.batch_size)
    batches = first.store.batches(cfg.batch_size, cfg.seed, start_step=start,
                                  part=(distributed.rank(), distributed.world_size()))
    prefetch = max(trainer.cfg.prefetch for trainer in trainers)
    if prefetch:
        batches = Prefetcher(batches, prefetch, pin_memory=torch.device(cfg.device).type == "cuda")
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.closing(batches))
        stack.enter_context(stop.stop_requests())
        for member in members:
            member.open_log(stack)
        for step in range(start, cfg.steps):
            x = next(batches).to(cfg.device, non_blocking=True)
            metrics = [member.step(x, step) for member in members if step >= member.start]
            if callback is not None:
                callback(step, metrics[0] if len(members) == 1 else None)
            number = stop.requested()
            if number is not None and step + 1 < cfg.steps:
                _stop_now(members, step + 1, number)
    return [TrainResult(member.model, member.scale, member.start or None, cfg.device, member.notes) for member in members]


def _stop_now(members: list[_Member], steps_done: int, number: int) -> None:
    """Checkpoint every member at the step boundary ``steps_done`` and raise ``Interrupted``."""
    for member in members:
        if member.saved_at != steps_done and steps_done > member.start:
            torch.set_rng_state(member.rng)  # the member's own stream, as after its last step
            member.save(steps_done)
    raise Interrupted(f"stopped by {signal.Signals(number).name} after step {steps_done - 1}, checkpoint saved; "
                      "`hsae run` again resumes from the last checkpoint", number)
