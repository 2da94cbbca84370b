"""Worker processes of the harness.

``python -m benchmarks.worker time SPEC_JSON ROUNDS CASE… OUT_JSON`` builds the cases (one
architecture family), warms each up, then runs ROUNDS rounds of ``spec.steps`` timed steps per
case (rounded up to whole ``update_every`` cycles, the same count for every case). The cases
take their steps in turn, one step each, the order rotating from step to step: cases compared
with one another are timed in one process, on the same data and threads, a few seconds apart at
most, so a busy moment of the machine slows them alike.

``python -m benchmarks.worker memory SPEC_JSON CASE OUT_JSON`` measures one case alone: the
resident high-water mark over its timed steps (above the resident size once its libraries are
imported) and the peak tensor memory of one profiled step, against the state that a step cannot
do without (parameters, optimizer state, one batch).
"""

from __future__ import annotations

import json
import math
import sys
import time
import warnings
from pathlib import Path

import torch

from benchmarks import memory
from benchmarks.cases import CASES, Stepper
from benchmarks.spec import Spec


class Timed:
    """A case's stepper with its own step counter. The warm-up is whole cycles, so every timed
    window starts with a step that runs every level."""

    def __init__(self, name: str, spec: Spec, batches: list[torch.Tensor]):
        self.cycle = CASES[name].cycle(spec)
        self.spec, self.batches = spec, batches
        self.stepper: Stepper = CASES[name].build(spec)
        self.window = self.cycle * math.ceil(spec.steps / self.cycle)
        self.index = 0
        self.run(self.cycle * math.ceil(spec.warmup / self.cycle))

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.stepper.step(self.batches[self.index % len(self.batches)], self.index)
            self.index += 1

    def timed_step(self) -> float:
        """Seconds one step took."""
        started = time.perf_counter()
        self.run(1)
        return time.perf_counter() - started


def time_cases(names: list[str], spec: Spec, rounds: int) -> dict[str, list[float]]:
    """samples/s of each case in each round."""
    batches = spec.batches()
    cases = [Timed(name, spec, batches) for name in names]
    cycle = math.lcm(*(case.cycle for case in cases))
    window = cycle * math.ceil(spec.steps / cycle)
    speeds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        seconds = [0.0] * len(cases)
        for step in range(window):
            for i in [(step + j) % len(cases) for j in range(len(cases))]:
                seconds[i] += cases[i].timed_step()
        for name, spent in zip(names, seconds):
            speeds[name].append(spec.batch * window / spent)
    return speeds


def measure_memory(name: str, spec: Spec) -> dict:
    # A tiny copy of the case is built and stepped first, so that the libraries it imports are
    # already loaded when the resident baseline is taken; the batches are counted as one, below.
    tiny = Spec(d=8, n=64, k=2, batch=8, warmup=1, steps=1, update_every=spec.update_every)  # level 3: 4 latents, k 1
    Timed(name, tiny, tiny.batches())
    batches = spec.batches()
    baseline = memory.resident_mib()
    case = Timed(name, spec, batches)
    memory.reset_resident_peak()
    case.run(case.window)
    resident_peak = memory.resident_peak_mib()
    stepper = case.stepper
    batch = memory.tensor_bytes([batches[0]])
    state = (memory.tensor_bytes(stepper.model.parameters())
             + memory.tensor_bytes(t for s in stepper.optimizer.state.values() for t in s.values()) + batch)
    # Gradients are dropped first, so the profiled step allocates its own whether or not the
    # library keeps them between steps; the window was whole cycles, so this step runs every level.
    stepper.optimizer.zero_grad(set_to_none=True)
    growth = memory.peak_tensor_growth(lambda: case.run(1))
    return {
        "state_mib": state / memory.MIB,
        "peak_tensor_mib": (state + growth) / memory.MIB,
        "resident_growth_mib": (None if baseline is None or resident_peak is None
                                else resident_peak - baseline + batch / memory.MIB),
        "memory_step": getattr(stepper, "memory_step", None),
    }


def main(argv: list[str] | None = None) -> None:
    mode, spec_json, *rest = argv or sys.argv[1:]
    spec = Spec(**json.loads(spec_json))
    torch.set_num_threads(spec.threads)
    warnings.simplefilter("ignore")
    if mode == "time":
        rounds, *names, out = rest
        result = time_cases(names, spec, int(rounds))
    else:
        name, out = rest
        result = measure_memory(name, spec)
    Path(out).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
