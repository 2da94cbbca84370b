"""The fast path for codes with few non-zeros (TopK, BatchTopK): Eq. 1-2 of spec §1 computed
on the selected entries only.

A code z (B, n) is held as a :class:`SparseCode`, its entries (row, latent, value) grouped by
row. A training step then has one dense product left, the projection p = W_enc (x − b_dec) +
b_enc, and that one runs without autograd, in row chunks, only to choose the support (a
:class:`SparseSelector` made by the encoder). The chosen entries of p are handed back to
autograd by :meth:`Projection.at`, whose backward touches the selected entries only
(g_i = ∂L/∂p at entry i = (r_i, j_i)):

    ∂L/∂W_enc[j]       = Σ_{i: j_i = j} g_i (x − b_dec)[r_i]
    ∂L/∂b_enc[j]       = Σ_{i: j_i = j} g_i
    ∂L/∂(x − b_dec)[r] = Σ_{i: r_i = r} g_i W_enc[j_i]
    ∂L/∂b_dec          = −Σ_j ∂L/∂b_enc[j] W_enc[j]      (when x needs no gradient)

and :func:`decode` forms Eq. 2 as a weighted bag of decoder columns (``embedding_bag``), with
∂L/∂W_dec[:, j] = Σ_{i: j_i = j} v_i ∂L/∂x̂[r_i]. Both weight gradients are bag sums over the
entries (``hsae.sae.factored``): formed whole by an ordinary backward, or recorded in factored
form inside :func:`hsae.sae.factored.factored_gradients`. A (row, latent) pair may repeat: its
entries add, as in :meth:`SparseCode.to_dense`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from hsae.interfaces.sparse import Projection, SparseCode, SparseSelector, Support
from hsae.sae import factored

MAX_DENSITY = 1 / 8
"""Largest share of non-zeros (capacity / (B·n)) for which the fast path is used; above it the
dense path is quicker (sparse kernels run at a fraction of a dense product's rate)."""

CHUNK_BYTES = 16 << 20
"""Size of one chunk of detached pre-activations while the support is chosen."""


def chunk_rows(n_rows: int, n_inputs: int, n_latents: int, itemsize: int = 4) -> int:
    """Rows of pre-activations per chunk: about ``CHUNK_BYTES``, at least one. Inside
    :func:`hsae.sae.factored.factored_gradients` (a step that saves memory) a chunk holds at
    most as many values as the batch of ``n_rows`` inputs of width ``n_inputs``."""
    rows = CHUNK_BYTES // (n_latents * itemsize)
    if factored.factored_mode():
        rows = min(rows, n_rows * n_inputs // n_latents)
    return max(1, rows)


class _PreAtSupport(torch.autograd.Function):
    """The entries of p = (x − b_dec) W_encᵀ + b_enc at a support, their values given (computed
    without autograd while the support was chosen); the backward is the module docstring's.
    ``shift`` is a copy of b_dec taken with the values, the one W_enc's gradient is formed with."""

    @staticmethod
    def forward(ctx, values, x, b_dec, shift, W_enc, b_enc, support, factors):
        ctx.save_for_backward(x, W_enc)
        ctx.support, ctx.shift, ctx.W_enc, ctx.factors = support, shift, W_enc, factors
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        x, W_enc = ctx.saved_tensors
        s = ctx.support
        _, need_x, need_b_dec, _, need_W, need_b_enc, _, _ = ctx.needs_input_grad
        grad = grad.to(W_enc.dtype)
        grad_x = grad_b_dec = grad_W = grad_b_enc = None
        if need_b_enc or (need_b_dec and not need_x):
            grad_b_enc = grad.new_zeros(W_enc.shape[0]).index_add_(0, s.latents, grad)
        if need_x:  # bags[r] = Σ_{i in row r} g_i W_enc[j_i] = ∂L/∂(x − b_dec)[r]
            bags = F.embedding_bag(s.latents, W_enc, s.offsets, mode="sum", per_sample_weights=grad)
            grad_x = bags.to(x.dtype)
            if need_b_dec:
                grad_b_dec = -bags.sum(0)
        elif need_b_dec:  # Σ_r bags[r] = Σ_j (Σ_{i: j_i = j} g_i) W_enc[j], without a (B, d) tensor
            grad_b_dec = -(grad_b_enc @ W_enc)
        if need_W:
            grad_W = factored.gradient(ctx.W_enc, ctx.factors, False, s.rows, s.latents, grad, s.n_latents, x,
                                       ctx.shift)
        return None, grad_x, grad_b_dec, None, grad_W, grad_b_enc if need_b_enc else None, None, None


@dataclass
class BatchProjection(Projection):
    """The :class:`hsae.interfaces.sparse.Projection` of one batch ``x`` through an SAE's encoder
    weights; ``b_dec`` None: ``x`` is centred already."""

    x: torch.Tensor
    W_enc: torch.Tensor
    b_enc: torch.Tensor
    b_dec: torch.Tensor | None = None

    def __post_init__(self):
        self.shift = None if self.b_dec is None else self.b_dec.detach().clone()

    def at(self, support: Support, values: torch.Tensor) -> torch.Tensor:
        """p at ``support``, whose (detached) ``values`` were computed while choosing it;
        differentiable in ``x``, ``b_dec``, ``W_enc`` and ``b_enc`` with a sparse backward."""
        return _PreAtSupport.apply(values, self.x, self.b_dec, self.shift, self.W_enc, self.b_enc, support,
                                   factored.recorder(self.W_enc))

    def centered(self, start: int, stop: int) -> torch.Tensor:
        """(x − b_dec)[start:stop], contiguous rows (the same values whatever ``x``'s layout)."""
        rows = self.x[start:stop]
        return (rows if self.shift is None else rows - self.shift).contiguous()

    def chunks(self, step: int):
        """``(first_row, p[rows])`` over chunks of ``step`` rows of p, without autograd."""
        with torch.no_grad():
            for start in range(0, self.x.shape[0], step):
                pre = self.centered(start, start + step) @ self.W_enc.t()
                yield start, pre.add_(self.b_enc)


class _Decode(torch.autograd.Function):
    """x̂ = Σ_i v_i W_dec[:, j_i] per row (+ b_dec) on a support; the W_dec gradient is the bags
    Σ_{i: j_i = j} v_i ∂L/∂x̂[r_i] (``hsae.sae.factored``)."""

    @staticmethod
    def forward(ctx, values, W_dec, b_dec, support, factors):
        atoms = W_dec.t().contiguous()
        out = F.embedding_bag(support.latents, atoms, support.offsets, mode="sum",
                              per_sample_weights=values.to(atoms.dtype))
        if b_dec is not None:
            out.add_(b_dec)
        ctx.save_for_backward(atoms, values)
        ctx.support, ctx.W_dec, ctx.factors = support, W_dec, factors
        return out

    @staticmethod
    def backward(ctx, grad):
        atoms, values = ctx.saved_tensors
        s = ctx.support
        need_values, need_W, need_b, _, _ = ctx.needs_input_grad
        grad = grad.contiguous()
        grad_values = grad_W = grad_b = None
        if need_values:  # ∂L/∂v_i = ∂L/∂x̂[r_i] · W_dec[:, j_i]
            grad_values = torch.ops.aten._embedding_bag_per_sample_weights_backward(
                grad, atoms, s.latents, s.offsets, s.rows, 0).to(values.dtype)
        if need_b:  # Σ_r ∂L/∂x̂[r], as a product (a GPU's sum over rows takes a temporary of twice (B, d))
            grad_b = grad.t() @ grad.new_ones(grad.shape[0])
        if need_W:
            grad_W = factored.gradient(ctx.W_dec, ctx.factors, True, s.rows, s.latents, values, s.n_latents, grad)
        return grad_values, grad_W, grad_b, None, None


def decode(code: SparseCode, W_dec: torch.Tensor, b_dec: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 2 on the stored entries: x̂[r] = Σ_{i: r_i = r} v_i W_dec[:, j_i] (+ b_dec), (B, d).

    ``W_dec`` (d, n) is read as its transpose, one atom per row; that is free when ``W_dec`` is
    stored column by column (``W_dec.t()`` contiguous), as :class:`hsae.sae.sae.SAE` stores it.
    """
    return _Decode.apply(code.values, W_dec, b_dec, code.support, factored.recorder(W_dec))
