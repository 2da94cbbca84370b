"""Batches whose rows are split over processes (data-parallel training, docs/distributed.md).

In a data-parallel run every process holds an equal, disjoint slice of each global batch. A
loss that is a mean over rows needs nothing: the average of the processes' gradients is the
gradient of the global mean. What depends on the whole batch at once (a batch variance, a
batch-wide top-k budget, which latents fired, a bias fitted to the batch) must be reduced over
the processes; the helpers below do that, and return their input unchanged when the rows are
not split, so a single process pays one flag test.

The trainer marks its model's forward pass with :func:`rows_split_over`; code whose rows are the
same on every process (a cascade's level ≥ 2 trains on decoder columns) runs inside
:func:`rows_shared`. Collectives run on every process in the same order, so these helpers must
be reached by all processes alike (a branch taken on one rank only would hang the others).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.distributed as dist

_group: list = [None]  # the process group the current forward pass's rows are split over, or None


@contextmanager
def rows_split_over(group):
    """Inside: the rows of the batch being processed are split over ``group`` (None, or a
    group of one process: nothing is split)."""
    before = _group[0]
    _group[0] = group if group is not None and dist.get_world_size(group) > 1 else None
    try:
        yield
    finally:
        _group[0] = before


@contextmanager
def rows_shared():
    """Inside: the rows being processed are the same on every process (no reduction)."""
    before = _group[0]
    _group[0] = None
    try:
        yield
    finally:
        _group[0] = before


def is_split() -> bool:
    return _group[0] is not None


def n_processes() -> int:
    """Processes the rows are split over (1 when they are not)."""
    return 1 if _group[0] is None else dist.get_world_size(_group[0])


def total_rows(local: int) -> int:
    """Rows of the whole batch, given this process's ``local`` rows (the slices are equal)."""
    return local * n_processes()


def _reduced(tensor: torch.Tensor, op) -> torch.Tensor:
    if _group[0] is None:
        return tensor
    out = tensor.detach().clone()
    dist.all_reduce(out, op=op, group=_group[0])
    return out


def batch_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Σ over the processes of ``tensor`` (detached), e.g. of per-process row sums."""
    return _reduced(tensor, dist.ReduceOp.SUM)


def batch_max(tensor: torch.Tensor) -> torch.Tensor:
    """Elementwise max over the processes (detached); for bool flags, their union."""
    if tensor.dtype == torch.bool:
        return _reduced(tensor.to(torch.uint8), dist.ReduceOp.MAX).bool() if is_split() else tensor
    return _reduced(tensor, dist.ReduceOp.MAX)


def batch_min(tensor: torch.Tensor) -> torch.Tensor:
    """Elementwise min over the processes (detached)."""
    return _reduced(tensor, dist.ReduceOp.MIN)


def batch_rows(tensor: torch.Tensor) -> torch.Tensor:
    """The processes' tensors concatenated along dim 0 in process order (detached): the whole
    batch's rows in their single-process order. Every process must pass the same shape."""
    if _group[0] is None:
        return tensor
    parts = [torch.empty_like(tensor) for _ in range(n_processes())]
    dist.all_gather(parts, tensor.detach().contiguous(), group=_group[0])
    return torch.cat(parts)


def batch_coupled(term: torch.Tensor) -> torch.Tensor:
    """A loss term computed from whole-batch reductions (so its value is the global one on every
    process) whose gradient reaches this process's rows only: its gradient is multiplied by the
    number of processes, so that their average is the gradient of the whole-batch term."""
    n = n_processes()
    if n == 1:
        return term
    return term.detach() + n * (term - term.detach())


def average_(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` replaced, in place, by its mean over the processes (e.g. a gradient: the mean
    of the processes' gradients of their rows' mean loss is that of the whole batch's)."""
    if _group[0] is not None:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=_group[0])
        tensor.div_(n_processes())
    return tensor
