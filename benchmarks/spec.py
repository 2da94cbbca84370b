"""What every case of one benchmark run shares: sizes, threads, data and step counts."""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass, fields

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


def add_options(parser: argparse.ArgumentParser, **defaults: int) -> None:
    """One integer option per :class:`Spec` field (``--update-every`` for ``update_every``), its
    default the field's unless given in ``defaults``."""
    for field in fields(Spec):
        default = defaults.get(field.name, field.default)
        parser.add_argument(f"--{field.name.replace('_', '-')}", type=int, default=default)


def from_options(args: argparse.Namespace) -> Spec:
    """The :class:`Spec` of parsed :func:`add_options` options."""
    return Spec(**{field.name: getattr(args, field.name) for field in fields(Spec)})
