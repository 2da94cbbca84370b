"""TopK encoder (spec §5) with the optional AuxK loss for dead latents, and its fast path."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from hsae.interfaces.data_parallel import batch_max, total_rows
from hsae.interfaces.encoder import Encoder, Encoding, SAELensForm
from hsae.interfaces.plugin import PluginConfig
from hsae.interfaces.sparse import Projection, SparseCode, SparseSelector, Support
from hsae_plugins.encoders.k_anneal import AnnealedK, KAnneal


class TopKConfig(PluginConfig):
    k: int = Field(32, ge=1, description="non-zeros kept per row")
    k_anneal: KAnneal | None = Field(
        None, description="anneal k linearly from `start` down to k over a `fraction` of the steps; per row "
        "⌈k(step)⌉ are kept (null: off)")
    aux_k: int = Field(0, ge=0, description="dead latents used by the AuxK loss (0: off)")
    aux_coef: float = Field(1 / 32, ge=0, description="weight of the AuxK loss")
    dead_after: int = Field(10_000_000, ge=1, description="rows without firing after which a latent counts as dead for AuxK")


def keep_topk(values: torch.Tensor, k: int) -> torch.Tensor:
    """Zero all but the k largest entries of each row of ReLU(values)."""
    k = min(k, values.shape[-1])
    top, idx = values.topk(k, dim=-1)
    return torch.zeros_like(values).scatter(-1, idx, torch.relu(top))


def _positive_rows(top: torch.Tensor, index: torch.Tensor, latents: torch.Tensor | None = None):
    """The entries of per-row top-k results ``(top, index)`` (B, k) that are > 0, grouped by row:
    (rows, latent ids, values); ``latents`` maps column ids to latent ids when given."""
    keep = top > 0
    rows = torch.arange(top.shape[0], device=top.device)[:, None].expand_as(index)[keep]
    chosen = index[keep]
    return rows, chosen if latents is None else latents[chosen], top[keep]


class TopKEncoder(AnnealedK, Encoder):
    """TopK SAE: keep the k largest entries of ReLU(p) per row (⌈k(step)⌉ while k anneals); no S
    term; optional AuxK."""

    Config = TopKConfig
    saelens_architecture = "topk"

    @classmethod
    def size_problems(cls, config: TopKConfig, n_latents: int) -> list[str]:
        """k < n (k ≥ n keeps every latent: no sparsity) and aux_k ≤ n."""
        problems = []
        if config.k >= n_latents:
            problems.append(f"k = {config.k} keeps every one of the {n_latents} latents (no sparsity); "
                            f"choose k < {n_latents} or more latents")
        if config.aux_k > n_latents:
            problems.append(f"aux_k = {config.aux_k} exceeds the {n_latents} latents; choose aux_k <= {n_latents}")
        return problems

    def __init__(self, config=None, *, n_inputs: int, n_latents: int):
        super().__init__(config, n_inputs=n_inputs, n_latents=n_latents)
        self.register_buffer("rows_since_fired", torch.zeros(n_latents, dtype=torch.long))

    @property
    def row_k(self) -> int:
        """Non-zeros kept per row now: ⌈k_now⌉."""
        return math.ceil(self.k_now)

    @property
    def _tracks_dead(self) -> bool:
        return self.training and self.config.aux_k > 0

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        pre = proj + b_enc
        z = keep_topk(pre, self.row_k)
        if self._tracks_dead:
            self._count_rows(z.shape[0], (z > 0).any(0))
        return Encoding(z, z.new_zeros(z.shape[0]), {"pre": pre})

    def saelens_form(self, b_enc):
        return SAELensForm("topk", {"b_enc": b_enc}, {"k": self.config.k, "rescale_acts_by_decoder_norm": False})

    @classmethod
    def saelens_options(cls, cfg):
        if cfg.get("rescale_acts_by_decoder_norm"):
            raise ValueError("a TopK SAE with rescale_acts_by_decoder_norm: true has no hsae equivalent; "
                             "fold the decoder norms into W_enc first (SAE.fold_W_dec_norm) and save it again")
        if "k" not in cfg:
            raise ValueError("key 'k' is missing")
        return {"k": int(cfg["k"])}

    @classmethod
    def from_saelens(cls, tensors):
        return tensors["b_enc"], {}

    @torch.no_grad()
    def _count_rows(self, n_rows: int, fired: torch.Tensor) -> None:
        """Rows since each latent fired, counted over the whole batch (all processes' rows)."""
        self.rows_since_fired.add_(total_rows(n_rows)).masked_fill_(batch_max(fired), 0)

    def sparse_selector(self, n_rows: int) -> SparseSelector:
        return _TopKSelector(self, n_rows)

    def aux_loss(self, enc, x, x_hat, sae):
        """AuxK: the top ``aux_k`` dead latents reconstruct the residual x − x_hat."""
        if not self._tracks_dead:
            return None
        recon = self._sparse_aux_reconstruction(enc, sae) if enc.sparse is not None else self._aux_reconstruction(enc, sae)
        if recon is None:
            return None
        residual = (x - x_hat).detach()
        return self.config.aux_coef * ((residual - recon) ** 2).sum(-1).mean()

    def _aux_reconstruction(self, enc, sae) -> torch.Tensor | None:
        dead = self.rows_since_fired >= self.config.dead_after
        if not dead.any():
            return None
        pre = enc.extras["pre"].masked_fill(~dead, float("-inf"))
        z_aux = keep_topk(pre, min(self.config.aux_k, int(dead.sum())))
        return z_aux @ sae.W_dec.t()

    def _sparse_aux_reconstruction(self, enc, sae) -> torch.Tensor | None:
        if "aux_rows" not in enc.extras:
            return None
        support = Support.from_rows(enc.extras["aux_rows"], enc.extras["aux_latents"], enc.n_rows,
                                    self.n_latents, unique=True)
        pre = enc.projection.at(support, enc.extras["aux_pre"])
        return sae.decode_code(SparseCode(support, pre))


class _TopKSelector(SparseSelector):
    """Per row the k largest entries of p that are > 0 (ReLU then TopK). With AuxK it also keeps
    p's columns of the latents that may be dead after this batch, to choose the AuxK entries."""

    def __init__(self, encoder: TopKEncoder, n_rows: int):
        self.encoder, self.n_rows = encoder, n_rows
        self.k = min(encoder.row_k, encoder.n_latents)
        self.capacity = total_rows(n_rows) * self.k
        self.candidates = None
        if encoder._tracks_dead:
            may_die = encoder.rows_since_fired + total_rows(n_rows) >= encoder.config.dead_after
            self.candidates = may_die.nonzero().squeeze(1)
        self.top: list[torch.Tensor] = []
        self.index: list[torch.Tensor] = []
        self.candidate_pre: list[torch.Tensor] = []

    def add(self, start: int, pre: torch.Tensor) -> None:
        top, index = pre.topk(self.k, dim=-1)
        self.top.append(top)
        self.index.append(index)
        if self.candidates is not None:
            self.candidate_pre.append(pre[:, self.candidates])

    def support(self) -> tuple[Support, torch.Tensor]:
        rows, latents, values = _positive_rows(torch.cat(self.top), torch.cat(self.index))
        self.top, self.index = [], []
        return Support.from_rows(rows, latents, self.n_rows, self.encoder.n_latents, unique=True), values

    def finish(self, support: Support, pre: torch.Tensor, projection: Projection) -> Encoding:
        code = SparseCode(support, pre)
        enc = Encoding(None, pre.new_zeros(self.n_rows), sparse=code, projection=projection)
        if self.candidates is not None:
            self.encoder._count_rows(self.n_rows, code.firing(0.0))
            enc.extras.update(self._aux_entries())
        return enc

    @torch.no_grad()
    def _aux_entries(self) -> dict[str, torch.Tensor]:
        """The AuxK code's entries: per row the top ``aux_k`` of p over the dead latents (> 0)."""
        dead = self.encoder.rows_since_fired[self.candidates] >= self.encoder.config.dead_after
        if not dead.any():
            return {}
        pre = torch.cat(self.candidate_pre).masked_fill(~dead, float("-inf"))
        top, index = pre.topk(min(self.encoder.config.aux_k, int(dead.sum())), dim=-1)
        rows, latents, values = _positive_rows(top, index, self.candidates)
        return {"aux_rows": rows, "aux_latents": latents, "aux_pre": values}
