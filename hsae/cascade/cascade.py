"""The N-level cascade (spec §2-3, Eq. 4-10 and 21-27).

Level 1 is an SAE on activations. Level l ≥ 2 is an SAE whose inputs are the columns of
level l−1's decoder that were active in this step (the dynamic mask, Eq. 26-27). All levels
are trained jointly, L = L₁ + Σ_{l≥2} λ_l L_l (Eq. 10/25), with the stop-gradient mode of
Eq. 34-35 deciding how L_l reaches the level below.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from hsae import registry
from hsae.cascade.config import CascadeConfig, LevelConfig
from hsae.cascade.firing_window import FiringWindow, strong_latents
from hsae.cascade.hierarchy import assign_parents
from hsae.cascade.settle import Concepts, group_means
from hsae.interfaces import data_parallel
from hsae.interfaces.data_parallel import batch_max, batch_rows, batch_sum, total_rows
from hsae.interfaces.encoder import Encoding
from hsae.metrics.inference_rule import parents_by_pre_activation
from hsae.sae.sae import SAE


@dataclass
class LevelOutput:
    """One level's part of a step. ``loss`` is L_l after normalisation, before λ_l."""

    level: int
    weight: float
    loss: torch.Tensor
    reconstruction: torch.Tensor  # mean over rows of ||target − x_hat||², unnormalised
    fvu: torch.Tensor
    l0: torch.Tensor
    n_inputs: int  # |A^l|: rows this level saw (batch rows for level 1, active atoms above)
    n_active: int  # latents of this level active on those rows: |A^{l+1}|
    code: torch.Tensor | Encoding  # the code z, dense or as the level's encoding

    @property
    def z(self) -> torch.Tensor:
        """The code matrix (B, n_l), built from a sparse encoding on first use."""
        return self.code.z if isinstance(self.code, Encoding) else self.code


@dataclass
class CascadeOutput:
    loss: torch.Tensor
    levels: list[LevelOutput]
    x_hat: torch.Tensor


class FiringMonitor(nn.Module):
    """Counts, per latent, the training steps since it last fired (for the dead share)."""

    def __init__(self, n_latents: int):
        super().__init__()
        self.register_buffer("steps_since_fired", torch.zeros(n_latents, dtype=torch.long))

    @torch.no_grad()
    def update(self, fired: torch.Tensor) -> None:
        self.steps_since_fired.add_(1).masked_fill_(fired, 0)

    def dead_fraction(self, window: int) -> float:
        return float((self.steps_since_fired >= window).float().mean())


def usage_penalty(code: torch.Tensor | Encoding) -> torch.Tensor:
    """[hsae] L2,1 norm of the code matrix over the batch, per row: Σ_k ||z[:, k]||₂ / B
    (of a dense code, or of an encoding without densifying it). Over the whole batch when its
    rows are split over processes (``hsae.interfaces.data_parallel``)."""
    if isinstance(code, Encoding):
        sq_sums, n_rows = code.column_sq_sums(), code.n_rows
    else:
        sq_sums, n_rows = code.pow(2).sum(0), code.shape[0]
    if data_parallel.is_split():  # the whole batch's column sums; the gradient reaches this process's rows
        sq_sums = sq_sums + (batch_sum(sq_sums) - sq_sums.detach())
        return data_parallel.batch_coupled(sq_sums.add(1e-12).sqrt().sum() / total_rows(n_rows))
    return sq_sums.add(1e-12).sqrt().sum() / n_rows


ROW_BLOCKS = 8
"""Batch-wide sums below run over this many blocks of rows: no temporary of the batch's size
(a GPU's reductions over the rows of a whole batch take one twice its size)."""


class _SquaredError(torch.autograd.Function):
    """Σ_r ||target[r] − x̂[r]||² / B, formed a block of rows at a time; the backward's one
    (B, d) tensor is the gradient (2/B)(x̂ − target)."""

    @staticmethod
    def forward(ctx, x_hat, target):
        ctx.save_for_backward(x_hat, target)
        blocks = zip(x_hat.tensor_split(ROW_BLOCKS), target.tensor_split(ROW_BLOCKS))
        return sum(torch.linalg.vector_norm(a - b).square() for a, b in blocks) / x_hat.shape[0]

    @staticmethod
    def backward(ctx, grad):
        x_hat, target = ctx.saved_tensors
        need_x_hat, need_target = ctx.needs_input_grad
        diff = torch.sub(x_hat, target).mul_(grad * (2 / x_hat.shape[0]))
        return diff.to(x_hat.dtype) if need_x_hat else None, diff.neg().to(target.dtype) if need_target else None


def squared_error(target: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ||target − x_hat||² (Eq. 3's first term), without a (B, d) temporary."""
    return _SquaredError.apply(x_hat, target)


def batch_variance(target: torch.Tensor) -> torch.Tensor:
    """Mean over rows of ||target − mean row||², a block of rows at a time (over the whole batch
    when its rows are split over processes)."""
    blocks = target.tensor_split(ROW_BLOCKS)
    n_rows = total_rows(target.shape[0])
    mean = batch_sum(sum(rows.sum(0) for rows in blocks)) / n_rows
    return batch_sum(sum(torch.linalg.vector_norm(rows - mean).square() for rows in blocks)) / n_rows


def level_loss_scale(target: torch.Tensor, how: str, variance: torch.Tensor | None = None) -> torch.Tensor:
    """Divisor of L_l for the chosen normalisation (detached); ``variance``, the target's
    :func:`batch_variance` when the caller has it already."""
    target = target.detach()
    if how == "sum":
        return target.new_ones(())
    if how == "mean":
        return target.new_tensor(float(target.shape[1]))
    second_moment = batch_sum(torch.linalg.vector_norm(target).square()) / total_rows(target.shape[0])
    variance = batch_variance(target) if variance is None else variance
    return torch.where(variance > 1e-6 * second_moment, variance, second_moment).clamp_min(1e-12)


class Cascade(nn.Module):
    """L SAEs in cascade, all in R^d; state-dict names ``levels.{l}.W_enc`` etc., l from 1."""

    def __init__(self, n_inputs: int, config: CascadeConfig):
        super().__init__()
        self.config = config
        self.n_inputs = n_inputs
        self.levels = nn.ModuleDict()
        self.monitors = nn.ModuleDict()
        for l, level in enumerate(config.levels, start=1):
            encoder = registry.create("hsae.encoders", level.encoder, n_inputs=n_inputs, n_latents=level.n_latents)
            self.levels[str(l)] = SAE(n_inputs, level.n_latents, encoder, level.normalize_decoder)
            self.monitors[str(l)] = FiringMonitor(level.n_latents)
        self.concepts = nn.ModuleDict({
            str(l): Concepts(level.n_latents)
            for l, level in enumerate(config.levels, start=1) if l > 1 and level.settle_every
        })
        self.window = FiringWindow(config.levels[0].n_latents) if "2" in self.concepts else None
        self.register_buffer("b_dec_ready", torch.zeros(len(config.levels), dtype=torch.bool))
        self.frozen = [l for l, level in enumerate(config.levels, start=1) if level.from_ is not None]
        for l in self.frozen:  # a trained SAE: no gradient, no renormalisation, its own b_dec
            self.level(l).requires_grad_(False)
            self.level(l).normalize_decoder = False

    @property
    def depth(self) -> int:
        return len(self.config.levels)

    def level(self, l: int) -> SAE:
        return self.levels[str(l)]

    def level_config(self, l: int) -> LevelConfig:
        return self.config.levels[l - 1]

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Fresh weights; a frozen level is read again from its folder (``from``)."""
        from hsae.interop.saelens import load_into, read_saelens

        for l in range(1, self.depth + 1):
            self.level(l).reset_parameters(generator)
        self.b_dec_ready.zero_()
        for l in self.frozen:
            load_into(self.level(l), read_saelens(self.level_config(l).from_.path))
            self.b_dec_ready[l - 1] = True

    def level_weight(self, l: int, step: int | None) -> float:
        """Weight of L_l at ``step`` (1 for level 1; λ_l with start step and linear warm-up)."""
        if l == 1:
            return 1.0
        cfg = self.level_config(l)
        if step is None:
            return cfg.lambda_
        if step < cfg.start_step:
            return 0.0
        if cfg.lambda_warmup == 0:
            return cfg.lambda_
        return cfg.lambda_ * min(1.0, (step - cfg.start_step + 1) / cfg.lambda_warmup)

    def _prepare_level(self, l: int, inputs: torch.Tensor) -> None:
        """When level l first trains, set its b_dec from its inputs (geometric median by default;
        from the whole batch's rows when they are split over processes)."""
        if self.training and not bool(self.b_dec_ready[l - 1]):
            self.level(l).init_b_dec(batch_rows(inputs), self.level_config(l).b_dec_init)
            self.b_dec_ready[l - 1] = True

    def settle_due(self, l: int, step: int | None) -> bool:
        cfg = self.level_config(l)
        return (self.training and step is not None and str(l) in self.concepts and step >= cfg.start_step
                and (step - cfg.start_step) % cfg.settle_every == 0)

    def window_open(self, step: int | None) -> bool:
        """Whether level 1's firings at ``step`` count towards level 2's next settle: from
        ``settle_every`` steps before its first one."""
        if self.window is None or not self.training or step is None:
            return False
        cfg = self.level_config(2)
        return step >= cfg.start_step - cfg.settle_every

    @torch.no_grad()
    def live_atoms(self, l: int, x: torch.Tensor) -> torch.Tensor:
        """Indices of level l's atoms that level l+1 settles on. Level 1: the latents that fired on
        the (whole) batch ``x`` or over the window since level 2 last settled, strongly enough
        (:func:`hsae.cascade.firing_window.strong_latents`, share ``settle_min_magnitude``). A settled
        level: its unpruned latents. Otherwise: those fired within the last ``settle_every`` steps."""
        if l == 1:
            rows, activation = self.window.counts(self.level(1).encode(x).z)
            return strong_latents(self.window.rows + rows, self.window.activation + activation,
                                  self.level_config(2).settle_min_magnitude)
        if str(l) in self.concepts:
            return self.concepts[str(l)].alive.nonzero().squeeze(1)
        window = self.level_config(l + 1).settle_every
        return (self.monitors[str(l)].steps_since_fired < window).nonzero().squeeze(1)

    @torch.no_grad()
    def settle(self, x: torch.Tensor, step: int | None) -> None:
        """Settle the levels due at ``step``, bottom-up, on the batch ``x`` (hsae.cascade.settle).
        A level settled right after the one below it clusters that level's clusters, each
        standing for the mean of its level-1 atoms; otherwise it clusters the live atoms below."""
        items = None  # the settled level's clusters as means of unit level-1 atoms
        for l in range(2, self.depth + 1):
            if not self.settle_due(l, step):
                items = None
                continue
            if items is None:
                atoms = self.level(l - 1).W_dec.t().index_select(0, self.live_atoms(l - 1, x))
                items = atoms.detach().cpu().double().numpy()
            if not len(items):
                break
            cfg = self.level_config(l)
            labels = self.concepts[str(l)].settle(self.level(l), items, cfg.settle_ratio, cfg.settle_z,
                                                  cfg.settle_cousins)
            if l == 2:
                self.window.reset()
            self.b_dec_ready[l - 1] = True
            items = group_means(items, labels)

    def atoms(self, l: int) -> torch.Tensor:
        """Level l's atoms as rows (n_l, d), the data of level l+1: its decoder columns, which
        training keeps at unit norm (spec §1); a frozen level's columns (a trained SAE, whose
        norms are its own convention) are passed up as unit directions too."""
        atoms = self.level(l).W_dec.t()
        if l in self.frozen:
            atoms = torch.nn.functional.normalize(atoms, dim=1)
        return atoms

    def level_inputs(self, l: int, active: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and reconstruction targets of level l ≥ 2: the active atoms of level l−1 (Eq. 7,
        21), detached as the stop-gradient mode says (Eq. 34-35)."""
        atoms = self.atoms(l - 1).index_select(0, active)  # its backward beats indexing's
        mode = self.config.stop_gradient
        inputs = atoms.detach() if mode == "bilateral" else atoms
        target = atoms.detach() if mode in ("partial", "bilateral") else atoms
        return inputs, target

    def level_due(self, l: int, step: int | None) -> bool:
        """Whether level l is computed at ``step``: every ``update_every``-th step, and only when
        every level below it is (always when ``step`` is None)."""
        return step is None or all(step % self.level_config(m).update_every == 0 for m in range(2, l + 1))

    def forward(self, x: torch.Tensor, step: int | None = None) -> CascadeOutput:
        """One joint step on a batch ``x`` (B, d). ``step`` sets start steps, warm-ups and which
        levels are due (``update_every``)."""
        self.settle(x, step)
        weights = [self.level_weight(l, step) for l in range(1, self.depth + 1)]
        top = max(l for l, w in enumerate(weights, start=1) if l == 1 or (w > 0 and self.level_due(l, step)))
        eps = self.config.mask_threshold
        total = x.new_zeros(())
        outputs: list[LevelOutput] = []
        inputs = target = x
        x_hat = x
        for l in range(1, top + 1):
            if l > 1:
                if active.numel() == 0:  # A^l empty: L_l and every level above are skipped
                    break
                inputs, target = self.level_inputs(l, active)
            with contextlib.nullcontext() if l == 1 else data_parallel.rows_shared():
                self._prepare_level(l, inputs)
                sae, cfg = self.level(l), self.level_config(l)
                out = sae(inputs)
                enc = out.encoding
                err = squared_error(target, out.x_hat)
                penalty = out.encoding.penalty.mean() * (cfg.sparsity_coef * sae.encoder.sparsity_scale(step or 0))
                if cfg.usage_coef:
                    penalty = penalty + cfg.usage_coef * usage_penalty(enc)
                with torch.no_grad():
                    variance = batch_variance(target)
                scale = level_loss_scale(target, cfg.normalisation, variance)
                loss = (err + penalty) / scale
                aux = sae.encoder.aux_loss(out.encoding, target, out.x_hat, sae)
                if aux is not None:
                    loss = loss + aux / scale
                total = total + weights[l - 1] * loss
                with torch.no_grad():
                    fired = batch_max(enc.firing(eps))
                    if self.training:
                        self.monitors[str(l)].update(batch_max(enc.firing(0.0)))
                    fvu = err.detach() / variance.clamp_min(1e-12)
                active = fired.nonzero().squeeze(1)
                if l == 1:
                    x_hat = out.x_hat
                    if self.window_open(step):
                        self.window.add(enc.z)
                outputs.append(
                    LevelOutput(l, weights[l - 1], loss, err.detach(), fvu, enc.positives_per_row().float().mean(),
                                total_rows(inputs.shape[0]), int(active.numel()), enc)
                )
        return CascadeOutput(total, outputs, x_hat)

    def after_backward(self) -> None:
        """Remove decoder-parallel gradient components (unit-norm mode), before the optimizer step."""
        for sae in self.levels.values():
            sae.remove_parallel_grad()

    def after_step(self) -> None:
        """Renormalise decoder columns, after the optimizer step."""
        for sae in self.levels.values():
            sae.renormalize_decoder()
        for l, concepts in self.concepts.items():
            concepts.enforce(self.level(int(l)))

    def param_groups(self, lr: float) -> list[dict]:
        """One optimizer group per level, with the level's own learning rate when set (none for a frozen level)."""
        return [
            {"params": list(self.level(l).parameters()), "lr": self.level_config(l).lr or lr, "name": f"level{l}"}
            for l in range(1, self.depth + 1) if l not in self.frozen
        ]

    # -- the evaluation side of the method contract (hsae.interfaces.method) -------------------

    @property
    def widths(self) -> list[int]:
        return [lv.n_latents for lv in self.config.levels]

    def decoder(self, l: int) -> torch.Tensor:
        return self.level(l).W_dec

    def parents(self, rows=None, rule: str = "threshold") -> list[np.ndarray]:
        """[π_2, …, π_L] from each level's code of the atoms below (spec §4, Eq. 33), or by the
        ReLU pre-activations under the authors' rule (``hsae.metrics.inference_rule``); the
        evaluation rows are not needed."""
        return parents_by_pre_activation(self) if rule == "authors" else assign_parents(self)

    @torch.no_grad()
    def level_figures(self, rows=None) -> dict[str, dict]:
        """Per level l ≥ 2 on every atom of level l−1, its data: FVU, L0 and the share of latents
        active on no atom."""
        figures = {}
        for l in range(2, self.depth + 1):
            atoms = self.atoms(l - 1)
            out = self.level(l)(atoms)
            variance = (atoms - atoms.mean(0)).pow(2).sum()
            figures[str(l)] = {
                "rows": atoms.shape[0],
                "fvu": float((atoms - out.x_hat).pow(2).sum() / variance.clamp_min(1e-12)),
                "l0": float((out.z > 0).sum(-1).float().mean()),
                "dead": float((~(out.z > 0).any(0)).float().mean()),
            }
        return figures
