"""The lean training step (``train.memory: lean``): the step of
:func:`hsae.train.trainer.train_step` — joint loss (Eq. 10/25), backward, removal of the
decoder-parallel gradient, global-norm clipping, Adam, renormalisation — with the same result
up to float rounding, and a peak memory close to what a step cannot do without (parameters,
Adam state, one batch).

The sparse path's (n, d) weight gradients are never formed whole: the backward records them in
factored form (:mod:`hsae.sae.factored`), and they are formed a block of 1/``LATENT_BLOCKS`` of
the latents at a time, twice:

1. norm pass (when clipping or loss scaling): each block, with the dense ``.grad`` part if the
   weight has one (e.g. from the level above), its decoder-parallel part removed (unit-norm
   decoders) and the loss scale undone; its norm is kept and the block dropped. The clip
   coefficient is that of ``torch.nn.utils.clip_grad_norm_``: min(1, c / (‖g‖ + 1e-6)), ‖g‖
   the norm of all gradients of ``params`` together.
2. update pass: the same blocks again, times the coefficient, each handed to Adam with the
   matching rows of the weight and of its moments. Adam is elementwise, so row blocks give the
   whole-tensor result.

The other gradients (biases, dense levels) are ordinary ``.grad`` tensors, unscaled, clipped and
stepped by the optimizer itself. In a data-parallel step every gradient is averaged over the
processes: the ``.grad`` tensors after the backward, each factored block as it is formed.
"""

from __future__ import annotations

import math

import torch
from torch.optim.adam import adam

from hsae.cascade.cascade import CascadeOutput
from hsae.interfaces.data_parallel import average_, is_split
from hsae.recipe.schema import TrainConfig
from hsae.sae.factored import FactoredGradient, GradientFactors, factored_gradients
from hsae.sae.sae import SAE, remove_parallel
from hsae.train.nonfinite import skips_batch
from hsae.train.device import device_type
from hsae.distributed import average_gradients
from hsae.train.precision import autocast

LATENT_BLOCKS = 8
"""A factored weight gradient is formed in this many blocks of latents (1/8 of an (n, d) weight
at a time)."""


LEAN_FROM_ENTRIES = 1 << 22
"""``train.memory: auto`` takes the lean step on a CPU once a parameter has this many entries
(16 MiB in float32): from there on it was measured as fast as the plain step (docs/performance.md),
below it the blockwise update's overhead shows."""


def takes_lean_step(cfg: TrainConfig, params: list[torch.Tensor]) -> bool:
    """Whether ``train.memory`` picks the lean step: 'lean' and 'fast' as named; 'auto' on a CPU
    when some parameter has at least :data:`LEAN_FROM_ENTRIES` entries, otherwise fast."""
    if cfg.memory != "auto":
        return cfg.memory == "lean"
    return device_type(cfg) == "cpu" and max((p.numel() for p in params), default=0) >= LEAN_FROM_ENTRIES


def lean_train_step(model: torch.nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, step: int,
                    cfg: TrainConfig, params: list[torch.Tensor],
                    scaler: torch.amp.GradScaler | None = None) -> CascadeOutput:
    """One optimizer step on the (scaled) batch ``x``, as :func:`hsae.train.trainer.train_step`
    (same arguments, same result up to float rounding) with weight gradients never formed whole.
    ``model`` follows the Cascade's training contract, its ``after_backward`` removing the
    decoder-parallel gradient of its SAEs; ``optimizer`` is a ``torch.optim.Adam``."""
    _check_optimizer(optimizer)
    optimizer.zero_grad(set_to_none=True)
    with factored_gradients() as factors:
        with autocast(cfg):
            out = model(x, step)
        if not out.loss.requires_grad or skips_batch(cfg, out.loss):  # frozen levels only, or a skipped batch
            return out
        (out.loss if scaler is None else scaler.scale(out.loss)).backward()
    if is_split():  # the dense gradients here, the factored ones block by block as they are formed
        average_gradients(params)
    model.after_backward()
    update = _LeanUpdate(model, optimizer, factors, params, scaler)
    finite, coef = True, None
    if cfg.grad_clip is not None or scaler is not None:
        finite, norm = update.measure(check_finite=scaler is not None)
        if cfg.grad_clip is not None:
            coef = torch.clamp(cfg.grad_clip / (norm + 1e-6), max=1.0)
    if scaler is None:
        update.apply(coef)
    else:
        handle = _ScalerHandle(finite, lambda: update.apply(coef), x.device)
        scaler.unscale_(handle)
        scaler.step(handle)
        scaler.update()
    factors.clear()
    model.after_step()
    return out


def _check_optimizer(optimizer: torch.optim.Optimizer) -> None:
    if not isinstance(optimizer, torch.optim.Adam):
        raise ValueError(f"the lean training step updates torch.optim.Adam state block by block; "
                         f"got {type(optimizer).__name__}")
    for group in optimizer.param_groups:
        if group["fused"] or group["capturable"] or group["differentiable"]:
            raise ValueError("the lean training step needs a plain torch.optim.Adam "
                             "(not fused, capturable or differentiable)")


class _LeanUpdate:
    """The passes over one step's gradients: dense ``.grad`` tensors and factored ones."""

    def __init__(self, model: torch.nn.Module, optimizer: torch.optim.Adam, factors: GradientFactors,
                 params: list[torch.Tensor], scaler: torch.amp.GradScaler | None):
        self.optimizer, self.factors, self.params = optimizer, factors, params
        self.unit_norm = {id(m.W_dec) for m in model.modules() if isinstance(m, SAE) and m.normalize_decoder}
        self.clipped = {id(p) for p in params}
        self.inv_scale = None
        if scaler is not None:  # as GradScaler.unscale_: the scale's reciprocal in double, as float
            self.inv_scale = torch.tensor(scaler.get_scale(), dtype=torch.float64).reciprocal().float()
            for group in optimizer.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.grad.mul_(self.inv_scale.to(p.grad.device))

    def blocks(self, gradient: FactoredGradient):
        """(latents, ∂L/∂W's rows for them) over blocks of latents, as the plain step has them
        after unscaling and ``after_backward``."""
        p = gradient.param
        dense = None if p.grad is None else gradient.latent_rows(p.grad)
        size = math.ceil(gradient.n_latents / LATENT_BLOCKS)
        for rows, g in gradient.blocks(size):
            average_(g)  # over the processes of a data-parallel step (nothing on one process)
            if id(p) in self.unit_norm:
                remove_parallel(g.t(), gradient.latent_rows(p.detach())[rows].t())
            if self.inv_scale is not None:
                g.mul_(self.inv_scale.to(g.device))
            if dense is not None:
                g.add_(dense[rows])
            yield rows, g
            del g

    @torch.no_grad()
    def measure(self, check_finite: bool) -> tuple[bool, torch.Tensor]:
        """Whether every gradient is finite (checked when asked) and the norm of the gradients
        of ``params`` together."""
        norms, finite = [], True
        for p in self.params:
            gradient = self.factors.get(p)
            if gradient is not None:
                parts = []
                for _, g in self.blocks(gradient):
                    parts.append(torch.linalg.vector_norm(g))
                    finite = finite and (not check_finite or bool(torch.isfinite(g).all()))
                    del g  # before the next block is formed
                norms.append(torch.linalg.vector_norm(torch.stack(parts)))
            elif p.grad is not None:
                norms.append(torch.linalg.vector_norm(p.grad))
                finite = finite and (not check_finite or bool(torch.isfinite(p.grad).all()))
        if not norms:
            return finite, torch.tensor(0.0)
        device = norms[0].device
        return finite, torch.linalg.vector_norm(torch.stack([n.to(device) for n in norms]))

    @torch.no_grad()
    def apply(self, coef: torch.Tensor | None) -> None:
        """The update pass: factored weights block by block, then the optimizer's own step for
        the dense gradients; ``coef`` (the clip coefficient) scales the gradients of ``params``."""
        factored = [(group, p) for group in self.optimizer.param_groups for p in group["params"]
                    if self.factors.get(p) is not None]
        for group, p in factored:
            gradient = self.factors.pop(p)
            _adam_rows(self.optimizer, group, gradient, self.blocks(gradient), coef if id(p) in self.clipped else None)
            p.grad = None
        if coef is not None:
            for p in self.params:
                if p.grad is not None:
                    p.grad.mul_(coef.to(p.grad.device))
        self.optimizer.step()


def _adam_rows(optimizer: torch.optim.Adam, group: dict, gradient: FactoredGradient, blocks,
               coef: torch.Tensor | None) -> None:
    """``optimizer``'s step for one weight, given its gradient as row blocks of latents."""
    p = gradient.param
    state = optimizer.state[p]
    if not state:  # as Adam's own lazy initialisation (step on the CPU, moments like p)
        scalar = torch.float64 if torch.get_default_dtype() == torch.float64 else torch.float32
        state["step"] = torch.tensor(0.0, dtype=scalar)
        for name in ("exp_avg", "exp_avg_sq") + (("max_exp_avg_sq",) if group["amsgrad"] else ()):
            state[name] = torch.zeros_like(p, memory_format=torch.preserve_format)
    rows = gradient.latent_rows
    weight, exp_avg, exp_avg_sq = rows(p.detach()), rows(state["exp_avg"]), rows(state["exp_avg_sq"])
    max_exp_avg_sq = rows(state["max_exp_avg_sq"]) if group["amsgrad"] else None
    beta1, beta2 = group["betas"]
    start = state["step"].clone()
    counter = start
    for block, g in blocks:
        if coef is not None:
            g.mul_(coef.to(g.device))
        counter = start.clone()  # every block takes the step from the same count
        adam([weight[block]], [g], [exp_avg[block]], [exp_avg_sq[block]],
             [] if max_exp_avg_sq is None else [max_exp_avg_sq[block]], [counter],
             foreach=group["foreach"], decoupled_weight_decay=group["decoupled_weight_decay"],
             amsgrad=group["amsgrad"], beta1=beta1, beta2=beta2, lr=group["lr"],
             weight_decay=group["weight_decay"], eps=group["eps"], maximize=group["maximize"])
        del g  # before the next block is formed
    state["step"].copy_(counter)


class _ScalerHandle:
    """What ``torch.amp.GradScaler`` reads of an optimizer, standing in for the lean update: one
    flag whose gradient is non-finite when the step's gradients are (so the scaler skips the
    step and lowers its scale), and the update pass as ``step``."""

    def __init__(self, finite: bool, step, device: torch.device):
        flag = torch.zeros(1, device=device, requires_grad=True)
        flag.grad = torch.full((1,), 0.0 if finite else math.inf, device=device)
        self.param_groups = [{"params": [flag]}]
        self._step = step

    def step(self) -> None:
        self._step()
