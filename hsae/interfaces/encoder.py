"""The encoder contract (spec §5): the activation σ, its sparsity term S and any auxiliary loss.

An encoder plugin is an ``nn.Module`` built once per SAE as ``cls(config, n_inputs=d,
n_latents=n)``. The SAE computes the projection ``W_enc (x − b_dec)`` (Eq. 1 without the bias)
and hands it to :meth:`Encoder.encode` with ``b_enc``; the plugin returns the sparse code.
An encoder whose codes have a fixed number of non-zeros may also offer the fast path
(:meth:`Encoder.sparse_selector`, with the types of ``hsae.interfaces.sparse``); ``encode``
stays its reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

import torch
from torch import nn

from hsae.errors import BadInput
from hsae.interfaces.plugin import Plugin, PluginConfig
from hsae.interfaces.sparse import Projection, SparseCode, SparseSelector

class Decoder(Protocol):
    """What :meth:`Encoder.aux_loss` may read of the SAE it belongs to."""

    W_dec: torch.Tensor
    """(d, n) decoder, one atom per column (Eq. 2)."""

    def decode_code(self, code: SparseCode) -> torch.Tensor:
        """Σ_i v_i W_dec[:, j_i] per row of a sparse code (Eq. 2 without b_dec), (B, d)."""


class Encoding:
    """What an encoder returns for a batch of B rows.

    z: (B, n) the code; on the fast path (``hsae.interfaces.sparse``) it is given as ``sparse``, its
    non-zero entries, and the dense matrix is only built if ``z`` is read. penalty: (B,) the
    sparsity term S(z) per row, before the sparsity coefficient (zeros for structurally sparse
    encoders). extras: tensors the encoder's :meth:`Encoder.aux_loss` needs later (e.g. the
    gate's pre-activations). projection: on the fast path, the pre-activations at any entries.
    """

    def __init__(self, z: torch.Tensor | None, penalty: torch.Tensor, extras: dict[str, torch.Tensor] | None = None,
                 *, sparse: SparseCode | None = None, projection: Projection | None = None):
        if (z is None) == (sparse is None):
            raise ValueError("an Encoding holds its code either dense (z) or sparse, exactly one of them")
        self._z = z
        self.penalty = penalty
        self.extras = {} if extras is None else extras
        self.sparse = sparse
        self.projection = projection

    @property
    def z(self) -> torch.Tensor:
        if self._z is None:
            self._z = self.sparse.to_dense()
        return self._z

    @property
    def n_rows(self) -> int:
        return self.sparse.n_rows if self.sparse is not None else self._z.shape[0]

    def positives_per_row(self) -> torch.Tensor:
        """(B,) the number of entries > 0 in each row of z (its L0 for non-negative codes)."""
        if self.sparse is not None:
            return self.sparse.positives_per_row()
        return (self._z > 0).sum(-1)

    def firing(self, threshold: float = 0.0) -> torch.Tensor:
        """(n,) bool: latents whose largest entry over the rows exceeds ``threshold`` (≥ 0)."""
        if self.sparse is not None:
            return self.sparse.firing(threshold)
        return self._z.max(0).values > threshold

    def column_sq_sums(self) -> torch.Tensor:
        """(n,) Σ_b z[b, j]² (differentiable)."""
        if self.sparse is not None:
            return self.sparse.column_sq_sums()
        return self._z.pow(2).sum(0)


@dataclass
class SAELensForm:
    """An encoder as SAELens v6 writes it: ``architecture`` (cfg.json), the config keys it adds
    (e.g. ``k``), and its tensors in SAELens's names: the encoder bias (``b_enc``, or ``b_gate``
    for a gated SAE) and any others (``threshold``, ``r_mag``, ``b_mag``). SAELens computes the
    code from ``p = (x − b_dec) W_enc + bias`` exactly as this encoder does at inference."""

    architecture: str
    tensors: dict[str, torch.Tensor]
    config: dict[str, Any] = field(default_factory=dict)


class Encoder(Plugin, nn.Module):
    """Base of encoder plugins: maps pre-activations to a sparse code (spec §5).

    ``batch_inference``: when set, an encoder whose training rule acts on a whole batch and
    whose inference rule is a learned threshold (BatchTopK) applies the training rule to each
    batch it encodes in eval mode too, without updating any state (the authors' HMS evaluation,
    spec §7); other encoders ignore it.

    SAELens interop (optional): ``saelens_form(b_enc)`` says how the trained encoder is
    exported; a class whose ``saelens_architecture`` names a SAELens architecture reads such a
    SAE: its options from cfg.json (``saelens_options``), its tensors (``from_saelens``)."""

    saelens_architecture: ClassVar[str | None] = None

    def __init__(self, config: PluginConfig | None = None, *, n_inputs: int, n_latents: int):
        nn.Module.__init__(self)
        Plugin.__init__(self, config)
        problems = self.size_problems(self.config, n_latents)
        if problems:
            raise BadInput(f"encoder {getattr(self, 'plugin_name', type(self).__name__)!r} of a level with "
                           f"{n_latents} latents: {'; '.join(problems)}")
        self.n_inputs = n_inputs
        self.n_latents = n_latents
        self.batch_inference = False

    @classmethod
    def size_problems(cls, config: PluginConfig, n_latents: int) -> list[str]:
        """What in the options contradicts a level of ``n_latents`` latents, one phrase with the
        fix per problem (e.g. TopK's ``k`` ≥ n, which leaves no sparsity); empty when nothing.
        Checked by ``hsae validate`` before anything runs and again when the encoder is built."""
        return []

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        """``proj`` = (x − b_dec) W_encᵀ, shape (B, n); ``dec_norm`` = ||W_dec[:, j]|| (n,)."""
        raise NotImplementedError

    def sparse_selector(self, n_rows: int) -> SparseSelector | None:
        """The fast path (``hsae.interfaces.sparse``): a selector that chooses the support of a batch of
        ``n_rows`` codes and finishes them; None (the default) when codes are not structurally
        sparse, and then :meth:`encode` is used."""
        return None

    def aux_loss(self, enc: Encoding, x: torch.Tensor, x_hat: torch.Tensor, sae: Decoder) -> torch.Tensor | None:
        """An auxiliary loss added to the level's loss (mean over rows), or None."""
        return None

    def at_step(self, step: int, steps: int) -> dict[str, float]:
        """Called before every training step with the step and the run's length, for schedules
        that are a function of the step (a resumed run continues them exactly). Returns the
        scheduled values it set, logged in ``metrics.jsonl`` (default: none)."""
        return {}

    def sparsity_scale(self, step: int) -> float:
        """Multiplier of the sparsity coefficient at ``step`` (schedules such as P-annealing)."""
        return 1.0

    def saelens_form(self, b_enc: torch.Tensor) -> SAELensForm | None:
        """This encoder (in eval mode) in SAELens's terms, or None when SAELens has no equivalent."""
        return None

    @classmethod
    def saelens_options(cls, cfg: dict[str, Any]) -> dict[str, Any]:
        """This encoder's options for a SAELens SAE of architecture ``saelens_architecture``
        (cfg.json's content); ValueError when it cannot be read."""
        return {}

    @classmethod
    def from_saelens(cls, tensors: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(b_enc, the encoder's own tensors by state-dict name) from a SAELens SAE's tensors;
        the inverse of :meth:`saelens_form`. KeyError names a missing tensor."""
        raise NotImplementedError(f"{cls.__name__} does not read SAELens SAEs")

    def config_summary(self) -> dict:
        """Plain data describing this encoder, saved in ``config.json``."""
        return {"name": getattr(self, "plugin_name", type(self).__name__), **self.config.model_dump()}
