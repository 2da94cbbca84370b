"""The processes of a data-parallel run, on torch.distributed (docs/distributed.md).

``torchrun`` (or ``hsae run --nproc N``, which hands over to it) starts the processes and gives
each ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``.
:func:`join` initialises the default process group from them: NCCL when training on CUDA (each
process on the GPU of its local rank), gloo otherwise. Without those variables nothing is
initialised and every function here answers as for one process.
"""

from __future__ import annotations

import os

import torch
import torch.distributed as dist

from hsae.errors import BadInput
from hsae.interfaces.data_parallel import average_


def launched() -> bool:
    """Whether this process is one of several started by a launcher."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def _uses_cuda(device: str) -> bool:
    return device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())


def join(device: str) -> str:
    """Join the launcher's process group (once) and return this process's training device:
    ``device`` itself, or for CUDA the GPU of the local rank."""
    if not launched():
        return device
    cuda = _uses_cuda(device)
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group("nccl" if cuda else "gloo")
    return f"cuda:{torch.cuda.current_device()}" if cuda else device


def leave() -> None:
    """Leave the process group (at the end of a command: a process that exits while its group
    is open may be aborted)."""
    if dist.is_initialized():
        dist.destroy_process_group()


def group():
    """The default process group when several processes run, else None."""
    return dist.group.WORLD if dist.is_initialized() and dist.get_world_size() > 1 else None


def rank() -> int:
    return dist.get_rank() if group() is not None else 0


def world_size() -> int:
    return dist.get_world_size() if group() is not None else 1


def is_main() -> bool:
    """Whether this process writes: checkpoints, metrics.jsonl, the run directory, the console."""
    return rank() == 0


def _collective_device() -> torch.device:
    """Where tensors for collectives live: the GPU under NCCL, the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


def barrier() -> None:
    if group() is not None:
        dist.barrier()


def agree(value: int, what: str) -> None:
    """Raise BadInput unless every process holds the same ``value`` (e.g. the step it resumes
    from: a run directory must be one shared folder)."""
    if group() is None:
        return
    mine = torch.tensor([int(value)], dtype=torch.int64, device=_collective_device())
    parts = [torch.empty_like(mine) for _ in range(world_size())]
    dist.all_gather(parts, mine)
    values = [int(p) for p in parts]
    if len(set(values)) > 1:
        raise BadInput(f"the processes disagree on {what}: {values} (rank order); every process must see the "
                       "same run directory (a shared filesystem when the run spans machines)")


def largest(value: int) -> int:
    """The largest of the processes' ``value`` (e.g. a stop signal seen by any one of them)."""
    if group() is None:
        return value
    mine = torch.tensor([int(value)], dtype=torch.int64, device=_collective_device())
    dist.all_reduce(mine, op=dist.ReduceOp.MAX)
    return int(mine)


def check_batch(batch_size: int) -> None:
    """A global batch must split into equal slices, one per process."""
    if batch_size % world_size():
        raise BadInput(f"train.batch_size {batch_size} does not split evenly over {world_size()} processes; "
                       f"choose a multiple of {world_size()}")


def average_gradients(params: list[torch.Tensor]) -> None:
    """Each ``.grad`` replaced by its mean over the processes of a data-parallel step (inside
    :func:`hsae.interfaces.data_parallel.rows_split_over`; nothing otherwise)."""
    for p in params:
        if p.grad is not None:
            average_(p.grad)
