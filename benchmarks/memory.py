"""Memory measurements of one process: resident set (with a resettable high-water mark, Linux)
and the peak of live tensor memory during a piece of code (from the torch profiler's
allocation events, the CPU counterpart of ``torch.cuda.max_memory_allocated``)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

MIB = 1 << 20


def _status(key: str) -> float | None:
    """A ``/proc/self/status`` entry in MiB (None off Linux)."""
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024 / MIB
    return None


def resident_mib() -> float | None:
    """The resident set now, in MiB."""
    return _status("VmRSS")


def reset_resident_peak() -> None:
    """Start a new high-water mark of the resident set (``clear_refs`` 5)."""
    path = Path("/proc/self/clear_refs")
    if path.exists():
        path.write_text("5")


def resident_peak_mib() -> float | None:
    """The resident set's high-water mark since the process started or the last reset, in MiB."""
    return _status("VmHWM")


def tensor_bytes(tensors) -> int:
    """Bytes held by the tensors among ``tensors``."""
    return sum(t.numel() * t.element_size() for t in tensors if torch.is_tensor(t))


def peak_tensor_growth(run: Callable[[], None]) -> int:
    """Largest growth of live CPU tensor memory (bytes) while ``run()`` runs: the memory each op
    holds on to (its own allocations less its own frees, not its children's) and the allocations
    and frees outside any op, summed in time order. A temporary that one op allocates and frees
    itself is not seen, so this is a lower bound of the true peak."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.cpu_memory_usage if event.name == "[memory]" else event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak
