"""Learning-rate multiplier: linear warm-up, constant, then linear decay to zero."""

from __future__ import annotations


def lr_multiplier(step: int, total_steps: int, warmup_steps: int, decay_start: float) -> float:
    """m(step) ∈ [0, 1]; the rate used at ``step`` (0-based) is m · lr."""
    if warmup_steps and step < warmup_steps:
        return (step + 1) / warmup_steps
    decay_from = int(decay_start * total_steps)
    if step < decay_from or decay_from >= total_steps:
        return 1.0
    return max(0.0, (total_steps - step) / (total_steps - decay_from))
