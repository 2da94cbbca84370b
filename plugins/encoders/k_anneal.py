"""k annealing for the TopK-style encoders (spec §9): k goes linearly from a start value down to
the target over the first part of training, as a function of the step, so a resumed run
continues the schedule exactly.

    r(t) = min(t, S) / S,   S = ⌊fraction · steps⌋
    k(t) = k_start · (1 − r(t)) + k · r(t)

The authors' trainer anneals both levels from ``k_start = d`` (the input width) over the first
10 % of the steps; that is the default here once ``k_anneal`` is given.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class KAnneal(BaseModel):
    """The ``k_anneal`` option of the topk and batchtopk encoders."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: float | Literal["d"] = Field("d", description="k at step 0: a number, or 'd' (the input width)")
    fraction: float = Field(0.1, gt=0, le=1, description="share of the run's steps over which k reaches its target")


def annealed_k(target: float, anneal: KAnneal | None, n_inputs: int, step: int, steps: int) -> float:
    """k at ``step`` of a run of ``steps`` steps (the target without annealing or once it is over)."""
    if anneal is None:
        return float(target)
    span = int(anneal.fraction * steps)
    if span <= 0:
        return float(target)
    start = float(n_inputs if anneal.start == "d" else anneal.start)
    ratio = min(step, span) / span
    return start * (1 - ratio) + target * ratio


class AnnealedK:
    """Mixin of an encoder whose config has ``k`` and ``k_anneal``: ``k_now`` is the k of the
    current training step (the target at inference), set by :meth:`at_step`."""

    def at_step(self, step: int, steps: int) -> dict[str, float]:
        self.k_scheduled = annealed_k(self.config.k, self.config.k_anneal, self.n_inputs, step, steps)
        return {"k": self.k_scheduled} if self.config.k_anneal is not None else {}

    @property
    def k_now(self) -> float:
        return getattr(self, "k_scheduled", float(self.config.k)) if self.training else float(self.config.k)
