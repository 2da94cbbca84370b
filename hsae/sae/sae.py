"""One sparse autoencoder (spec §1, Eq. 1-3) with a pluggable encoder (spec §5).

    z     = σ(W_enc (x − b_dec) + b_enc)          (1)
    x_hat = W_dec z + b_dec                         (2)
    L     = ||x − x_hat||² + λ_s · S(z)             (3)

Shapes follow the spec: ``W_enc`` (n, d), ``W_dec`` (d, n); inputs are rows (B, d). ``W_dec``
is stored column by column (``W_dec.t()`` is contiguous), so an atom is one contiguous read.

When the encoder offers a selector and its codes are sparse enough (``hsae.sae.sparse``), Eq. 1-2
run on the selected entries only; otherwise, or with ``fast_path = False``, densely. Both give
the same loss and gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from hsae.interfaces.data_parallel import total_rows
from hsae.interfaces.encoder import Encoder, Encoding
from hsae.interfaces.sparse import SparseCode
from hsae.sae import sparse
from hsae.sae.init import decoder_bias


@dataclass
class SAEOutput:
    encoding: Encoding
    x_hat: torch.Tensor

    @property
    def z(self) -> torch.Tensor:
        return self.encoding.z


def _selector_follows_encode(cls: type) -> bool:
    """Whether ``cls.sparse_selector`` is defined in the class that defines ``cls.encode`` or below it."""
    defined_in = {name: next(c for c in cls.__mro__ if name in vars(c)) for name in ("encode", "sparse_selector")}
    return issubclass(defined_in["sparse_selector"], defined_in["encode"])


@torch.no_grad()
def remove_parallel(grad: torch.Tensor, W: torch.Tensor) -> None:
    """grad[:, j] ← grad[:, j] − W[:, j] (grad[:, j]·W[:, j]) / ||W[:, j]||², in place, for
    (d, m) columns, without a temporary of their size."""
    along = torch.einsum("dn,dn->n", grad, W) / torch.linalg.vector_norm(W, dim=0).square().clamp_min(1e-24)
    grad.addcmul_(W, along, value=-1)


class SAE(nn.Module):
    """An SAE of width ``n_latents`` on inputs of width ``n_inputs``; σ and S from ``encoder``.
    ``fast_path``: use the encoder's sparse selector when it has one (set False for the dense
    reference path)."""

    def __init__(self, n_inputs: int, n_latents: int, encoder: Encoder, normalize_decoder: bool = True):
        super().__init__()
        self.n_inputs, self.n_latents = n_inputs, n_latents
        self.normalize_decoder = normalize_decoder
        self.W_enc = nn.Parameter(torch.empty(n_latents, n_inputs))
        self.b_enc = nn.Parameter(torch.zeros(n_latents))
        self.W_dec = nn.Parameter(torch.empty(n_latents, n_inputs).t())
        self.b_dec = nn.Parameter(torch.zeros(n_inputs))
        self.encoder = encoder
        self.fast_path = True
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """Decoder columns: random unit vectors; encoder: the decoder's transpose; biases zero."""
        w = torch.randn(self.n_inputs, self.n_latents, generator=generator)
        self.W_dec.copy_(w / w.norm(dim=0, keepdim=True))
        self.W_enc.copy_(self.W_dec.t())
        self.b_enc.zero_()
        self.b_dec.zero_()

    @torch.no_grad()
    def init_b_dec(self, inputs: torch.Tensor, method: str = "geometric_median") -> None:
        """Set ``b_dec`` from a sample of this SAE's inputs (rows)."""
        self.b_dec.copy_(decoder_bias(inputs, method).to(self.b_dec))

    def decoder_norms(self) -> torch.Tensor:
        return self.W_dec.norm(dim=0)

    def encode(self, x: torch.Tensor) -> Encoding:
        """Eq. 1: the encoder plugin applies σ to W_enc (x − b_dec) (+ b_enc). The rows are made
        contiguous first, so the code does not depend on how ``x`` is laid out in memory."""
        selector = self._selector(x.shape[0])
        if selector is None:
            centered = (x - self.b_dec).contiguous()
            return self.encoder.encode(centered @ self.W_enc.t(), self.b_enc, self.decoder_norms())
        projection = sparse.BatchProjection(x, self.W_enc, self.b_enc, self.b_dec)
        rows = x.shape[0] if selector.whole_batch else sparse.chunk_rows(*x.shape, self.n_latents)
        for start, pre in projection.chunks(rows):
            selector.add(start, pre)
        support, values = selector.support()
        return selector.finish(support, projection.at(support, values), projection)

    def _selector(self, n_rows: int) -> sparse.SparseSelector | None:
        """The encoder's selector when the fast path is on and the code sparse enough. A subclass
        that overrides ``encode`` but not ``sparse_selector`` keeps the dense path: the inherited
        selector would skip its ``encode``."""
        if not self.fast_path or not _selector_follows_encode(type(self.encoder)):
            return None
        selector = self.encoder.sparse_selector(n_rows)
        if selector is None or selector.capacity > sparse.MAX_DENSITY * total_rows(n_rows) * self.n_latents:
            return None
        return selector

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Eq. 2."""
        return z @ self.W_dec.t() + self.b_dec

    def decode_code(self, code: SparseCode) -> torch.Tensor:
        """Eq. 2 without ``b_dec`` on a sparse code: Σ_i v_i W_dec[:, j_i] per row, (B, d)."""
        return sparse.decode(code, self.W_dec)

    def reconstruct(self, enc: Encoding) -> torch.Tensor:
        """Eq. 2 from an encoding, through its sparse form when it has one."""
        if enc.sparse is not None:
            return sparse.decode(enc.sparse, self.W_dec, self.b_dec)
        return self.decode(enc.z)

    def forward(self, x: torch.Tensor) -> SAEOutput:
        enc = self.encode(x)
        return SAEOutput(enc, self.reconstruct(enc))

    @torch.no_grad()
    def remove_parallel_grad(self) -> None:
        """Drop the component of each decoder column's gradient along the column (unit-norm mode)."""
        if self.normalize_decoder and self.W_dec.grad is not None:
            remove_parallel(self.W_dec.grad, self.W_dec)

    @torch.no_grad()
    def renormalize_decoder(self) -> None:
        """W_dec[:, j] ← W_dec[:, j] / ||W_dec[:, j]|| (spec §1, after every optimizer step)."""
        if self.normalize_decoder:
            self.W_dec.div_(self.W_dec.norm(dim=0, keepdim=True).clamp_min(1e-12))
