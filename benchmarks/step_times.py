"""``python -m benchmarks.step_times CASE``: one case's training steps timed one at a time,
alternating with the flat level-1 step (``hsae topk``) on the same batches, and the median step
time of each, a cascade with ``update_every`` split into the steps that train the upper levels
(every m-th) and those that train level 1 only. Says where a cascade's extra time goes, which the
averaged ratios of ``python -m benchmarks`` do not.
"""

from __future__ import annotations

import argparse
import statistics
import warnings

import torch

from benchmarks.cases import CASES
from benchmarks.spec import Spec, add_options, from_options
from benchmarks.worker import Timed

FLAT = "hsae topk"


def step_times(name: str, spec: Spec) -> dict[str, list[float]]:
    """Seconds per step over ``spec.steps`` steps of each, by kind: the flat step, and the case's
    steps (split by cycle position)."""
    batches = spec.batches()
    flat, case = Timed(FLAT, spec, batches), Timed(name, spec, batches)
    times: dict[str, list[float]] = {FLAT: []}
    for _ in range(spec.steps):
        times[FLAT].append(flat.timed_step())
        kind = name if case.cycle == 1 else (
            f"{name}: steps training every level" if case.index % case.cycle == 0 else f"{name}: level 1 only")
        times.setdefault(kind, []).append(case.timed_step())
    return times


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_times", description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=[n for n, c in CASES.items() if c.group in ("hsae", "cascade")])
    add_options(parser, steps=16)  # --steps: timed steps of each of the two cases
    args = parser.parse_args(argv)
    spec = from_options(args)
    torch.set_num_threads(spec.threads)
    warnings.simplefilter("ignore")
    times = step_times(args.case, spec)
    flat = statistics.median(times[FLAT])
    for kind, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{kind:<62} {len(seconds):>3} steps  median {1000 * median:>9,.1f} ms  {median / flat:.2f}× flat")


if __name__ == "__main__":
    main()
