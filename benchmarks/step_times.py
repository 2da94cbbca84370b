"""``python -m benchmarks.step_times CASE``: one case's training steps timed one at a time,
alternating with the flat level-1 step (``hsae topk``) on the same batches, and the median step
time of each, a cascade with ``update_every`` split into the steps that train the upper levels
(every m-th) and those that train level 1 only. Says where a cascade's extra time goes, which the
averaged ratios of ``python -m benchmarks`` do not.
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings

import torch

from benchmarks.cases import CASES
from benchmarks.spec import Spec
from benchmarks.worker import Timed

FLAT = "hsae topk"


def step_seconds(timed: Timed) -> float:
    started = time.perf_counter()
    timed.run(1)
    return time.perf_counter() - started


def step_times(name: str, spec: Spec, steps: int) -> dict[str, list[float]]:
    """Seconds per step, by kind: the flat step, and the case's steps (split by cycle position)."""
    batches = spec.batches()
    flat, case = Timed(FLAT, spec, batches), Timed(name, spec, batches)
    times: dict[str, list[float]] = {FLAT: []}
    for _ in range(steps):
        times[FLAT].append(step_seconds(flat))
        kind = name if case.cycle == 1 else (
            f"{name}: steps training every level" if case.index % case.cycle == 0 else f"{name}: level 1 only")
        times.setdefault(kind, []).append(step_seconds(case))
    return times


def main(argv: list[str] | None = None) -> None:
    defaults = Spec()
    parser = argparse.ArgumentParser(prog="python -m benchmarks.step_times", description=__doc__.splitlines()[0])
    parser.add_argument("case", choices=[n for n, c in CASES.items() if c.group in ("hsae", "cascade")])
    for field in ("d", "n", "k", "batch", "threads", "warmup", "update_every", "seed"):
        parser.add_argument(f"--{field.replace('_', '-')}", type=int, default=getattr(defaults, field))
    parser.add_argument("--steps", type=int, default=16, help="timed steps of each of the two cases")
    args = parser.parse_args(argv)
    spec = Spec(**{f: getattr(args, f) for f in ("d", "n", "k", "batch", "threads", "warmup", "update_every", "seed")})
    torch.set_num_threads(spec.threads)
    warnings.simplefilter("ignore")
    times = step_times(args.case, spec, args.steps)
    flat = statistics.median(times[FLAT])
    for kind, seconds in times.items():
        median = statistics.median(seconds)
        print(f"{kind:<62} {len(seconds):>3} steps  median {1000 * median:>9,.1f} ms  {median / flat:.2f}× flat")


if __name__ == "__main__":
    main()
