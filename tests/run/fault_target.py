"""``hsae`` with one fault injected, for test_faults.py to run as a real process.

Usage: ``python fault_target.py FAULT N HSAE_ARGS...``, where FAULT is one of
- ``enospc-checkpoint``: the N-th safetensors file a checkpoint writes gets half its bytes,
  then the disk is "full" (OSError ENOSPC);
- ``enospc-store``: the N-th write of store rows to the journal writes half of them, then ENOSPC;
- ``nan-weights``: before training step N, level 1's decoder bias becomes NaN (so does the loss);
- ``nan-loss``: the loss of step N is NaN (the weights stay finite);
- ``slow-from``: from step N on, each step waits a second first (the results are unchanged).
"""

import errno
import sys
import time

import torch

from hsae.cascade.cascade import Cascade
from hsae.cli.app import main
from hsae.store import journal
from hsae.train import checkpoint, trainer


def _full(path) -> OSError:
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def on_call(owner, name: str, n: int, fault) -> None:
    """Replace ``owner.name`` so that its n-th call runs ``fault(original, *args)`` instead."""
    original, calls = getattr(owner, name), [0]

    def wrapper(*args, **kwargs):
        calls[0] += 1
        if calls[0] == n:
            return fault(original, *args, **kwargs)
        return original(*args, **kwargs)

    setattr(owner, name, wrapper)


def half_a_safetensors_file(original, tensors, path, *args, **kwargs):
    original(tensors, path, *args, **kwargs)
    with open(path, "r+b") as handle:
        handle.truncate(len(handle.read()) // 2)
    raise _full(path)


def half_an_append(original, log, array):
    original(log, array[: len(array) // 2])
    raise _full(log.name)


def at_step(n: int, change) -> None:
    original = trainer.train_step

    def wrapper(model, optimizer, x, step, *args, **kwargs):
        if step == n:
            return change(original, model, optimizer, x, step, *args, **kwargs)
        return original(model, optimizer, x, step, *args, **kwargs)

    trainer.train_step = wrapper


def nan_weight(original, model, *args, **kwargs):
    with torch.no_grad():
        model.level(1).b_dec.fill_(float("nan"))
    return original(model, *args, **kwargs)


def nan_loss(original, model, optimizer, x, step, *args, **kwargs):
    forward = Cascade.forward

    def poisoned(self, *a, **k):
        out = forward(self, *a, **k)
        out.loss = out.loss * float("nan")
        return out

    Cascade.forward = poisoned
    try:
        return original(model, optimizer, x, step, *args, **kwargs)
    finally:
        Cascade.forward = forward


def slow_steps(n: int) -> None:
    original = trainer.train_step

    def wrapper(model, optimizer, x, step, *args, **kwargs):
        if step >= n:
            time.sleep(1.0)
        return original(model, optimizer, x, step, *args, **kwargs)

    trainer.train_step = wrapper


if __name__ == "__main__":
    fault, n = sys.argv[1], int(sys.argv[2])
    if fault == "enospc-checkpoint":
        on_call(checkpoint, "save_file", n, half_a_safetensors_file)
    elif fault == "enospc-store":
        on_call(journal, "_append", n, half_an_append)
    elif fault == "nan-weights":
        at_step(n, nan_weight)
    elif fault == "nan-loss":
        at_step(n, nan_loss)
    elif fault == "slow-from":
        slow_steps(n)
    else:
        raise SystemExit(f"unknown fault {fault!r}")
    sys.argv = ["hsae", *sys.argv[3:]]
    main()
