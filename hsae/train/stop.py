"""Stopping training at a step boundary on SIGINT or SIGTERM.

Inside :func:`stop_requests`, the first SIGINT or SIGTERM only records the signal; the training
loop reads :func:`requested` after each step, writes a checkpoint of the step it has finished
and raises :class:`hsae.errors.Interrupted`. A second signal interrupts at once (the
checkpoints already written stay valid: each is renamed into place whole). Outside training,
or in a thread other than the main one, the handlers are left as they are.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from hsae import distributed
from hsae.errors import Interrupted

SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested: list[int] = []  # the signal asked for, once one came


def requested() -> int | None:
    """The signal that asked training to stop, or None. The processes of a data-parallel run
    agree on it (a signal that reached any one of them stops them all at the same step)."""
    number = distributed.largest(_requested[0] if _requested else 0)
    return number or None


def _on_signal(number: int, frame) -> None:
    if _requested:
        raise Interrupted(f"stopped at once by a second {signal.Signals(number).name}; "
                          "`hsae run` again resumes from the last checkpoint", number)
    _requested.append(number)


@contextlib.contextmanager
def stop_requests() -> Iterator[None]:
    """SIGINT and SIGTERM request a stop at the next step boundary while inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.getsignal(number) for number in SIGNALS}
    _requested.clear()
    for number in SIGNALS:
        signal.signal(number, _on_signal)
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _requested.clear()
