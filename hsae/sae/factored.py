"""Weight gradients of the sparse path kept in factored form, formed a block of latents at a time.

On the fast path (``hsae.sae.sparse``) the gradient of a (n, d) weight is a sum over the code's
entries i = (r_i, j_i) of a weight w_i times a row of a (B, d) matrix M:

    G[j] = Σ_{i: j_i = j} w_i (M − s)[r_i]

with, for W_enc, w_i = ∂L/∂p at entry i, M the SAE's input x and s = b_dec (spec §1, Eq. 1), and
for W_dec (one atom per latent), w_i = z at entry i, M = ∂L/∂x̂ and s = 0 (Eq. 2). A
:class:`LatentBags` holds (w, r, j, M, s) and forms any rows of G as a weighted bag sum
(``embedding_bag``) of M's rows less (Σ_{i: j_i = j} w_i) s, so (M − s) is never built: a block
of latents costs one block of G, never the whole (n, d) matrix.

Inside :func:`factored_gradients` the sparse path records these bags for its weights instead of
filling ``.grad`` (the biases and inputs still get ordinary gradients); the lean training step
(``hsae.train.lean_step``) reads them block by block. Outside it, nothing changes: ``.grad`` is
filled as usual, from the same bags.
"""

from __future__ import annotations

import contextlib
from contextvars import ContextVar
from typing import Iterator

import torch
import torch.nn.functional as F


class LatentBags:
    """G[j] = Σ_{i: latents_i = j} weights_i (source − shift)[rows_i] for j < ``n_latents``,
    formed as Σ_i weights_i source[rows_i] − (Σ_i weights_i) shift; ``shift`` (a row, or None
    for 0) is a copy taken when the entries were made."""

    def __init__(self, rows: torch.Tensor, latents: torch.Tensor, weights: torch.Tensor, n_latents: int,
                 source: torch.Tensor, shift: torch.Tensor | None = None):
        order = torch.argsort(latents, stable=True)
        self.rows = rows[order].int()
        self.weights = weights.detach()[order].to(source.dtype)
        counts = torch.bincount(latents, minlength=n_latents)
        self.bounds = torch.cat([counts.new_zeros(1), counts.cumsum(0)]).int()  # of each latent's entries
        self._bounds = self.bounds.tolist()  # read on the host without a device sync per block
        self.weight_sums = None if shift is None else self.weights.new_zeros(n_latents).index_add_(
            0, latents, weights.detach().to(source.dtype))
        self.n_latents, self.source, self.shift = n_latents, source, shift

    @property
    def width(self) -> int:
        return self.source.shape[1]

    def rows_of(self, start: int, stop: int) -> torch.Tensor:
        """G[start:stop], (stop − start, d)."""
        lo, hi = self._bounds[start], self._bounds[stop]
        if lo == hi:
            return self.source.new_zeros(stop - start, self.width)
        out = F.embedding_bag(self.rows[lo:hi], self.source, self.bounds[start:stop] - lo, mode="sum",
                              per_sample_weights=self.weights[lo:hi])
        if self.shift is not None:
            out.addr_(self.weight_sums[start:stop], self.shift.to(out.dtype), alpha=-1)
        return out

    def dense(self) -> torch.Tensor:
        """The whole G, (n, d)."""
        return self.rows_of(0, self.n_latents)


class FactoredGradient:
    """∂L/∂W of one weight as a sum of :class:`LatentBags` (of W's rows, or of Wᵀ's rows when
    ``transposed``: a (d, n) decoder has one latent per column)."""

    def __init__(self, param: torch.Tensor, transposed: bool):
        self.param, self.transposed = param, transposed
        self.bags: list[LatentBags] = []

    @property
    def n_latents(self) -> int:
        return self.bags[0].n_latents

    def latent_rows(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor`` (shaped like W) viewed with one latent per row."""
        return tensor.t() if self.transposed else tensor

    def blocks(self, size: int) -> Iterator[tuple[slice, torch.Tensor]]:
        """(latents, the gradient's rows for those latents) over consecutive blocks of ``size``
        latents. A block is dropped here once the next is asked for."""
        for start in range(0, self.n_latents, size):
            stop = min(start + size, self.n_latents)
            rows = self.bags[0].rows_of(start, stop)
            for bags in self.bags[1:]:
                rows.add_(bags.rows_of(start, stop))
            yield slice(start, stop), rows
            del rows


class GradientFactors:
    """The factored gradients recorded inside one :func:`factored_gradients` block, by weight."""

    def __init__(self):
        self._by_param: dict[int, FactoredGradient] = {}

    def add(self, param: torch.Tensor, bags: LatentBags, transposed: bool) -> None:
        gradient = self._by_param.setdefault(id(param), FactoredGradient(param, transposed))
        if gradient.transposed != transposed:
            raise ValueError("a weight's factored gradients must all have the same orientation")
        gradient.bags.append(bags)

    def get(self, param: torch.Tensor) -> FactoredGradient | None:
        return self._by_param.get(id(param))

    def pop(self, param: torch.Tensor) -> FactoredGradient | None:
        """The weight's factored gradient, dropped from here (its tensors are freed with it)."""
        return self._by_param.pop(id(param), None)

    def clear(self) -> None:
        """Drop every recorded gradient (the graph of a step may outlive its update)."""
        self._by_param.clear()

    def __len__(self) -> int:
        return len(self._by_param)


_ACTIVE: ContextVar[GradientFactors | None] = ContextVar("hsae_gradient_factors", default=None)


@contextlib.contextmanager
def factored_gradients() -> Iterator[GradientFactors]:
    """Within the block, the sparse path's forward passes mark their weights so that the
    backward records :class:`LatentBags` in the yielded :class:`GradientFactors` instead of
    forming (n, d) gradients. The mark is taken at forward time, so the backward may run later
    or on another thread."""
    factors = GradientFactors()
    token = _ACTIVE.set(factors)
    try:
        yield factors
    finally:
        _ACTIVE.reset(token)


def recorder(param: torch.Tensor) -> GradientFactors | None:
    """Where the gradient of ``param`` is to be recorded: the active :class:`GradientFactors`
    when there is one and ``param`` is a leaf that needs a gradient (a parameter), else None."""
    factors = _ACTIVE.get()
    if factors is None or not (param.is_leaf and param.requires_grad):
        return None
    return factors


def factored_mode() -> bool:
    """Whether a :func:`factored_gradients` block is active."""
    return _ACTIVE.get() is not None


def gradient(param: torch.Tensor, factors: GradientFactors | None, transposed: bool, rows: torch.Tensor,
             latents: torch.Tensor, weights: torch.Tensor, n_latents: int, source: torch.Tensor,
             shift: torch.Tensor | None = None):
    """What a backward returns for ``param``, whose gradient is the :class:`LatentBags` of the
    other arguments: None after recording them in ``factors``, else the dense gradient
    (transposed back for a (d, n) weight)."""
    if factors is not None:
        factors.add(param, LatentBags(rows, latents, weights, n_latents, source, shift), transposed)
        return None
    dense = LatentBags(rows, latents, weights, n_latents, source, shift).dense()
    return dense.t() if transposed else dense
