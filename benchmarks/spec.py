"""What every case of one benchmark run shares: sizes, threads, data and step counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch


@dataclass(frozen=True)
class Spec:
    d: int = 1024  # activation width
    n: int = 8192  # level-1 latents
    k: int = 32  # TopK / BatchTopK non-zeros per row
    batch: int = 4096
    threads: int = 2
    warmup: int = 2  # steps before timing (rounded up to whole update_every cycles; the first sets b_dec)
    steps: int = 6  # timed steps per round (rounded up to a whole number of update_every cycles)
    update_every: int = 8  # m of the cheap-upper-level cascades
    seed: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    def batches(self, count: int = 4) -> list[torch.Tensor]:
        """``count`` batches of rows drawn from N(0, I), the same for every case and process."""
        generator = torch.Generator().manual_seed(self.seed)
        return [torch.randn(self.batch, self.d, generator=generator) for _ in range(count)]
