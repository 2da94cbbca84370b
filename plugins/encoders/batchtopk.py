"""BatchTopK encoder (spec §5) with its inference threshold, and its fast path."""

from __future__ import annotations

import math

import torch
from pydantic import Field

from hsae.interfaces.data_parallel import batch_min, batch_rows, is_split, total_rows
from hsae.interfaces.encoder import Encoder, Encoding, SAELensForm
from hsae.interfaces.plugin import PluginConfig
from hsae.interfaces.sparse import Projection, SparseCode, SparseSelector, Support
from hsae_plugins.encoders.k_anneal import AnnealedK, KAnneal


class BatchTopKConfig(PluginConfig):
    k: float = Field(32, gt=0, description="average non-zeros per row; k·B are kept over a batch of B rows")
    threshold_beta: float = Field(0.999, ge=0, lt=1, description="EMA factor of the inference threshold")
    threshold_start: int = Field(0, ge=0, description="training batches before the threshold EMA starts")
    k_anneal: KAnneal | None = Field(
        None, description="anneal k linearly from `start` down to k over a `fraction` of the steps (null: off)")


class BatchTopKEncoder(AnnealedK, Encoder):
    """BatchTopK SAE: keep the k·B largest ReLU(p) over the batch; at inference z = p·1[p > θ]
    (or the batch rule again, per batch, with ``batch_inference``)."""

    Config = BatchTopKConfig

    @classmethod
    def size_problems(cls, config: BatchTopKConfig, n_latents: int) -> list[str]:
        """k < n: with k ≥ n every entry of the batch is kept (no sparsity)."""
        if config.k >= n_latents:
            return [f"k = {config.k:g} keeps every one of the {n_latents} latents of each row (no sparsity); "
                    f"choose k < {n_latents} or more latents"]
        return []

    def __init__(self, config=None, *, n_inputs: int, n_latents: int):
        super().__init__(config, n_inputs=n_inputs, n_latents=n_latents)
        self.register_buffer("threshold", torch.zeros(()))
        self.register_buffer("batches_seen", torch.zeros((), dtype=torch.long))

    def encode(self, proj: torch.Tensor, b_enc: torch.Tensor, dec_norm: torch.Tensor) -> Encoding:
        pre = proj + b_enc
        if not self.training and not self.batch_inference:
            z = pre * (pre > self.threshold)
            return Encoding(z, z.new_zeros(z.shape[0]))
        flat = torch.relu(pre).flatten()
        budget = self.budget(total_rows(pre.shape[0]), pre.shape[1])
        top, idx = flat.topk(min(budget, flat.numel()))
        if is_split():
            keep = within_budget(top, budget)
            top, idx = top[keep], idx[keep]
        z = torch.zeros_like(flat).scatter(0, idx, top).view_as(pre)
        if self.training:
            self._update_threshold(top.detach())
        return Encoding(z, z.new_zeros(z.shape[0]))

    def saelens_form(self, b_enc):
        """At inference a JumpReLU SAE with θ_j = θ for every latent (as SAELens exports BatchTopK)."""
        return SAELensForm("jumprelu", {"b_enc": b_enc, "threshold": self.threshold.expand(self.n_latents).clone()})

    def budget(self, n_rows: int, n_latents: int) -> int:
        """Entries kept over a batch: ⌈k·B⌉ (k of the current step while it anneals), at most B·n."""
        return min(n_rows * n_latents, math.ceil(self.k_now * n_rows))

    def sparse_selector(self, n_rows: int) -> SparseSelector | None:
        """The fast path; ``n_rows`` are this process's rows, the budget is the whole batch's."""
        return _BatchTopKSelector(self, n_rows) if self.training else None

    @torch.no_grad()
    def _update_threshold(self, kept: torch.Tensor) -> None:
        """θ ← β θ + (1 − β) · (smallest positive kept activation of the whole batch), after
        ``threshold_start`` batches (in float32 whatever the compute precision)."""
        self.batches_seen += 1
        kept = kept.float()
        positive = kept[kept > 0]
        smallest = positive.min() if positive.numel() else kept.new_tensor(math.inf)
        if is_split():
            smallest = batch_min(smallest)
        if not bool(torch.isfinite(smallest)) or int(self.batches_seen) <= self.config.threshold_start:
            return
        if self.threshold <= 0:  # first update: start the average at the observed value
            self.threshold.copy_(smallest)
        else:
            beta = self.config.threshold_beta
            self.threshold.mul_(beta).add_((1 - beta) * smallest)


def within_budget(top: torch.Tensor, budget: int) -> torch.Tensor:
    """Which of this process's candidates ``top`` (its largest values) are among the ``budget``
    largest of the whole batch, whose rows are split over processes: those at or above the
    budget-th largest of all processes' candidates (every process holds equally many)."""
    everyone = batch_rows(top)
    cut = everyone.topk(min(budget, everyone.numel())).values[-1]
    return top >= cut


class _BatchTopKSelector(SparseSelector):
    """The ⌈k·B⌉ largest entries of ReLU(p) over the batch that are > 0: each chunk's own top
    entries are merged into the running top (a chunk cannot add more than the budget)."""

    def __init__(self, encoder: BatchTopKEncoder, n_rows: int):
        self.encoder, self.n_rows = encoder, n_rows
        self.capacity = encoder.budget(total_rows(n_rows), encoder.n_latents)
        self.top: torch.Tensor | None = None
        self.flat: torch.Tensor | None = None

    def add(self, start: int, pre: torch.Tensor) -> None:
        top, flat = torch.relu(pre).flatten().topk(min(self.capacity, pre.numel()))
        flat = flat + start * self.encoder.n_latents
        if self.top is not None:
            top, where = torch.cat([self.top, top]).topk(min(self.capacity, self.top.numel() + top.numel()))
            flat = torch.cat([self.flat, flat])[where]
        self.top, self.flat = top, flat

    def support(self) -> tuple[Support, torch.Tensor]:
        keep = self.top > 0
        if is_split():
            keep &= within_budget(self.top, self.capacity)
        flat, order = self.flat[keep].sort()
        values = self.top[keep][order]
        self.top = self.flat = None
        return Support.from_flat(flat, self.n_rows, self.encoder.n_latents), values

    def finish(self, support: Support, pre: torch.Tensor, projection: Projection) -> Encoding:
        self.encoder._update_threshold(pre.detach())
        return Encoding(None, pre.new_zeros(self.n_rows), sparse=SparseCode(support, pre), projection=projection)
