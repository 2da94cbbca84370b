"""What the user sees when a command does not succeed: one message and an exit code, never a
traceback (docs/reliability.md).

``BadInput`` → 2; ``Interrupted`` → 128 + the signal; any other ``HsaeError`` → 1. Errors
that only a user's input or machine can cause are turned into the same messages wherever they
surface: a size that cannot be allocated (``MemoryError``, torch's allocator errors), a file that
cannot be read or written (``OSError``, named with its path; a full disk is a failure, exit 1,
not bad input), text that is not UTF-8. Anything else is a bug: a one-line report, exit 1, and
the traceback only with ``HSAE_DEBUG=1``.
"""

from __future__ import annotations

import errno
import os
import signal
import traceback

from hsae.errors import BadInput, HsaeError, Interrupted

ALLOCATION_PHRASES = ("can't allocate memory", "out of memory", "not enough memory", "allocate more than",
                      "invalid size", "negative dimension", "too large", "overflow")
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def _is_allocation(exc: BaseException) -> bool:
    if isinstance(exc, (MemoryError, OverflowError)):
        return True
    return isinstance(exc, RuntimeError) and any(p in str(exc).lower() for p in ALLOCATION_PHRASES)


def classify(exc: BaseException) -> tuple[int, str]:
    """(exit code, message) for an exception that ended a command."""
    if isinstance(exc, BadInput):
        return 2, f"error: {exc}"
    if isinstance(exc, Interrupted):
        return 128 + exc.signal_number, str(exc)
    if isinstance(exc, HsaeError):
        return 1, f"failed: {exc}"
    if _is_allocation(exc):
        return 2, ("error: a size cannot be allocated on this machine "
                   f"({type(exc).__name__}: {_one_line(exc)[:300]}); lower the recipe's sizes "
                   "(model.levels[].n_latents, train.batch_size, the dataset's size)")
    if isinstance(exc, OSError):
        where = " → ".join(str(f) for f in (exc.filename, exc.filename2) if f is not None)
        reason = exc.strerror or _one_line(exc)
        if exc.errno in DISK_FULL:
            return 1, (f"failed: {reason}{f' ({where})' if where else ''}; what was written before stays valid: "
                       "make room and run the command again (`hsae run` resumes from the last checkpoint)")
        return 2, f"error: {where or 'a file'}: {reason}"
    if isinstance(exc, UnicodeDecodeError):
        return 2, f"error: a file that should be text is not UTF-8 ({_one_line(exc)}); save it as UTF-8"
    detail = "".join(traceback.format_exception(exc)) if os.environ.get("HSAE_DEBUG") else ""
    return 1, (f"internal error (a bug in hsae or a plugin): {type(exc).__name__}: {_one_line(exc)[:500]}; "
               "set HSAE_DEBUG=1 to see where" + (f"\n{detail}" if detail else ""))


def raise_on_sigterm() -> None:
    """SIGTERM outside training ends the command as Ctrl-C does (training itself stops at a step
    boundary: ``hsae.train.stop``)."""
    def handler(number, frame):
        raise Interrupted("stopped by SIGTERM; `hsae run` again resumes from the last checkpoint", number)

    signal.signal(signal.SIGTERM, handler)
