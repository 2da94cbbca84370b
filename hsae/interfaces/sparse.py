"""The sparse code types of the encoder fast path (spec §1, Eq. 1-2 on selected entries).

A code z (B, n) with few non-zeros is held as a :class:`SparseCode`, its entries (row, latent,
value) grouped by row on a :class:`Support`. An encoder that offers the fast path returns a
:class:`SparseSelector`: the SAE feeds it the pre-activations p = W_enc (x − b_dec) + b_enc in
row chunks without autograd, it chooses the support, and finishes the code from p's values on
that support, made differentiable by a :class:`Projection`. The SAE implements the projection
and the sparse decode (``hsae.sae.sparse``); an encoder plugin only uses these types.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


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


class Projection:
    """The map (row r, latent j) ↦ p[r, j] = W_enc[j]·(x − b_dec)[r] + b_enc[j] (Eq. 1 inside σ)
    for one batch, implemented by the SAE."""

    def at(self, support: Support, values: torch.Tensor) -> torch.Tensor:
        """p at ``support``, whose (detached) ``values`` were computed while choosing it;
        differentiable in the SAE's parameters and input."""
        raise NotImplementedError


class SparseSelector:
    """Chooses the support of one batch's code from its pre-activations, seen once in row chunks
    (without autograd), then finishes the code from the differentiable values on that support.

    Made by :meth:`hsae.interfaces.encoder.Encoder.sparse_selector`. ``capacity`` is the most
    entries the support can have over the whole batch (all processes' rows together when they
    are split, ``hsae.interfaces.data_parallel``); ``whole_batch`` asks for the batch as a
    single chunk.
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
