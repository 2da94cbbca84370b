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

and :func:`decode` forms Eq. 2 as a weighted bag of decoder columns (``embedding_bag``), whose
backward adds into the used columns only. A (row, latent) pair may repeat: its entries add, as
in :meth:`SparseCode.to_dense`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

MAX_DENSITY = 1 / 8
"""Largest share of non-zeros (capacity / (B·n)) for which the fast path is used; above it the
dense path is quicker (sparse kernels run at a fraction of a dense product's rate)."""

CHUNK_BYTES = 16 << 20
"""Size of one chunk of detached pre-activations while the support is chosen."""


def chunk_rows(n_latents: int, itemsize: int = 4) -> int:
    """Rows of pre-activations per chunk: about ``CHUNK_BYTES``, at least one."""
    return max(1, CHUNK_BYTES // (n_latents * itemsize))


@dataclass(frozen=True)
class Support:
    """Entry positions of a (n_rows, n_latents) code, grouped by row: entry i sits at
    (rows[i], latents[i]) and ``offsets[r]`` is the first entry of row r (``rows`` never
    decreases). ``unique``: no (row, latent) pair repeats."""

    rows: torch.Tensor
    latents: torch.Tensor
    offsets: torch.Tensor
    n_rows: int
    n_latents: int
    unique: bool = False

    @classmethod
    def from_rows(cls, rows: torch.Tensor, latents: torch.Tensor, n_rows: int, n_latents: int,
                  unique: bool = False) -> Support:
        """From entries already grouped by row (``rows`` non-decreasing)."""
        counts = torch.bincount(rows, minlength=n_rows)
        return cls(rows, latents, torch.cumsum(counts, 0) - counts, n_rows, n_latents, unique)

    @classmethod
    def from_flat(cls, flat: torch.Tensor, n_rows: int, n_latents: int) -> Support:
        """From distinct positions ``row · n_latents + latent`` in increasing order."""
        return cls.from_rows(flat.div(n_latents, rounding_mode="floor"), flat.remainder(n_latents),
                             n_rows, n_latents, unique=True)


@dataclass
class SparseCode:
    """z[rows[i], latents[i]] += values[i] for every entry i of ``support``; ``values`` carries
    the gradient."""

    support: Support
    values: torch.Tensor

    @property
    def n_rows(self) -> int:
        return self.support.n_rows

    def to_dense(self) -> torch.Tensor:
        """The (B, n) code matrix (differentiable in ``values``)."""
        s = self.support
        dense = self.values.new_zeros(s.n_rows, s.n_latents)
        return dense.index_put((s.rows, s.latents), self.values, accumulate=True)

    def coalesced(self) -> SparseCode:
        """The same code with each (row, latent) pair once, its entries summed (differentiable)."""
        s = self.support
        if s.unique:
            return self
        keys, slot = torch.unique(s.rows * s.n_latents + s.latents, return_inverse=True)
        values = self.values.new_zeros(keys.numel()).index_add(0, slot, self.values)
        return SparseCode(Support.from_flat(keys, s.n_rows, s.n_latents), values)

    def positives_per_row(self) -> torch.Tensor:
        """(B,) the number of entries > 0 in each row of z."""
        code = self.coalesced()
        return torch.bincount(code.support.rows[code.values > 0], minlength=self.n_rows)

    def firing(self, threshold: float) -> torch.Tensor:
        """(n,) bool: latents with an entry of z above ``threshold`` (≥ 0) in some row."""
        code = self.coalesced()
        fired = torch.zeros(code.support.n_latents, dtype=torch.bool, device=code.values.device)
        fired[code.support.latents[code.values > threshold]] = True
        return fired

    def column_sq_sums(self) -> torch.Tensor:
        """(n,) Σ_b z[b, j]² (differentiable)."""
        code = self.coalesced()
        return code.values.new_zeros(code.support.n_latents).index_add(0, code.support.latents, code.values.pow(2))


class _PreAtSupport(torch.autograd.Function):
    """The entries of p = (x − b_dec) W_encᵀ + b_enc at a support, their values given (computed
    without autograd while the support was chosen); the backward is the module docstring's."""

    @staticmethod
    def forward(ctx, values, centered, W_enc, b_enc, latents, offsets):
        ctx.save_for_backward(centered, W_enc, latents, offsets)
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        centered, W_enc, latents, offsets = ctx.saved_tensors
        _, need_centered, need_W, need_b, _, _ = ctx.needs_input_grad
        grad = grad.to(W_enc.dtype)
        grad_centered = grad_W = grad_b = None
        if need_b:
            grad_b = grad.new_zeros(W_enc.shape[0]).index_add_(0, latents, grad)
        if need_centered or need_W:
            # bags[r] = Σ_{i in row r} g_i W_enc[j_i] is ∂L/∂(x − b_dec); the gradient of that
            # bag sum with respect to W_enc, taken along (x − b_dec), is ∂L/∂W_enc.
            with torch.enable_grad():
                weight = W_enc.detach().requires_grad_(need_W)
                bags = F.embedding_bag(latents, weight, offsets, mode="sum", per_sample_weights=grad)
            if need_W:
                (grad_W,) = torch.autograd.grad(bags, weight, centered.to(bags.dtype))
            if need_centered:
                grad_centered = bags.detach().to(centered.dtype)
        return None, grad_centered, grad_W, grad_b, None, None


@dataclass
class Projection:
    """The map (row r, latent j) ↦ p[r, j] = W_enc[j]·(x − b_dec)[r] + b_enc[j] (Eq. 1 inside σ),
    for one batch; ``centered`` is x − b_dec."""

    centered: torch.Tensor
    W_enc: torch.Tensor
    b_enc: torch.Tensor

    def at(self, support: Support, values: torch.Tensor) -> torch.Tensor:
        """p at ``support``, whose (detached) ``values`` were computed while choosing it;
        differentiable in ``centered``, ``W_enc`` and ``b_enc`` with a sparse backward."""
        return _PreAtSupport.apply(values, self.centered, self.W_enc, self.b_enc, support.latents, support.offsets)

    def chunks(self, step: int):
        """``(first_row, p[rows])`` over chunks of ``step`` rows of p, without autograd."""
        with torch.no_grad():
            for start in range(0, self.centered.shape[0], step):
                pre = self.centered[start:start + step] @ self.W_enc.t()
                yield start, pre.add_(self.b_enc)


def decode(code: SparseCode, W_dec: torch.Tensor, b_dec: torch.Tensor | None = None) -> torch.Tensor:
    """Eq. 2 on the stored entries: x̂[r] = Σ_{i: r_i = r} v_i W_dec[:, j_i] (+ b_dec), (B, d).

    ``W_dec`` (d, n) is read as its transpose, one atom per row; that is free when ``W_dec`` is
    stored column by column (``W_dec.t()`` contiguous), as :class:`hsae.sae.sae.SAE` stores it.
    """
    atoms = W_dec.t().contiguous()
    values = code.values.to(atoms.dtype)
    out = F.embedding_bag(code.support.latents, atoms, code.support.offsets, mode="sum", per_sample_weights=values)
    return out if b_dec is None else out + b_dec


class SparseSelector:
    """Chooses the support of one batch's code from its pre-activations, seen once in row chunks
    (without autograd), then finishes the code from the differentiable values on that support.

    Made by :meth:`hsae.interfaces.encoder.Encoder.sparse_selector`. ``capacity`` is the most
    entries the support can have; ``whole_batch`` asks for the batch as a single chunk.
    """

    capacity: int
    whole_batch: bool = False

    def add(self, start: int, pre: torch.Tensor) -> None:
        """Rows ``[start, start + len(pre))`` of p = W_enc (x − b_dec) + b_enc, in order."""
        raise NotImplementedError

    def support(self) -> tuple[Support, torch.Tensor]:
        """The chosen support and p's (detached) values on it."""
        raise NotImplementedError

    def finish(self, support: Support, pre: torch.Tensor, projection: Projection):
        """The :class:`hsae.interfaces.encoder.Encoding` from p on ``support`` (``pre``,
        differentiable); ``projection`` gives p at other entries (e.g. for an auxiliary loss)."""
        raise NotImplementedError
