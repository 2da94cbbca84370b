"""Starting a script or the ``hsae`` command as several gloo processes on 127.0.0.1 through
torchrun, with a bounded wait: a hung collective fails the test instead of hanging the suite.

Every child runs with Python's fault handler on, so a process that aborts prints where it was.
One failure is tried a second time: a worker aborted by the C++ runtime with no Python error
("terminate called without an active exception", SIGABRT). It was seen once, in a 3-process run
of the suite on a loaded 2-core machine, never in 87 runs of the same job (three at once), and it
left no trace of our code; any other failure, or the same abort twice, fails the test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

WORKERS = Path(__file__).parent / "distributed"  # the scripts the tests start
GIVE_UP = 600  # seconds: a guard against hanging (on a busy machine too), not a measurement


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def torchrun(n: int, *target: str) -> list[str]:
    """The command that runs ``target`` (a script and its arguments, or ``-m module …``) as
    ``n`` processes of one node whose rendezvous is a free port on 127.0.0.1."""
    return [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={n}", "--nnodes=1",
            "--master-addr=127.0.0.1", f"--master-port={free_port()}", *target]


def env(path: list[str] | None = None) -> dict:
    """This process's environment, one thread per process, and ``path`` put before sys.path as
    the children's PYTHONPATH (e.g. a folder registering plugins)."""
    extra = {"PYTHONPATH": os.pathsep.join([*path, *sys.path])} if path else {}
    return {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "1000", "PYTHONFAULTHANDLER": "1", **extra}


RUNTIME_ABORT = "terminate called without an active exception"


def _runtime_abort(result: subprocess.CompletedProcess) -> bool:
    """Whether a worker died of RUNTIME_ABORT with no Python traceback before it."""
    before, found, _ = result.stderr.partition(RUNTIME_ABORT)
    return result.returncode != 0 and bool(found) and "Traceback" not in before


def run(command: list[str], path: list[str] | None = None, check: bool = True,
        timeout: float = GIVE_UP) -> subprocess.CompletedProcess:
    """Run ``command`` to its end (at most ``timeout`` seconds); with ``check``, fail on a non-zero exit."""
    result = subprocess.run(command, env=env(path), capture_output=True, text=True, timeout=timeout)
    if _runtime_abort(result):
        print(f"{command}: a worker aborted in the C++ runtime; trying once more\n{result.stderr[-4000:]}")
        result = subprocess.run(command, env=env(path), capture_output=True, text=True, timeout=timeout)
    if check:
        assert result.returncode == 0, (f"{command} exited {result.returncode}:\n{result.stdout[-4000:]}\n"
                                        f"{result.stderr[-4000:]}")
    return result


def script(name: str) -> str:
    return str(WORKERS / name)
