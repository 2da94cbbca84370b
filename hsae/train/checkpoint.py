"""Checkpoints: tensors in safetensors, everything else in JSON; written atomically, checksummed.

``checkpoints/step-00001200/`` holds ``model.safetensors`` (the cascade's state dict),
``optimizer.safetensors`` (Adam's per-parameter state, named ``state.{i}.{key}``),
``state.json`` (step, the optimizer's param groups, the RNG state and trainer counters) and
``checksums.json`` (the SHA-256 of each of the three). A folder is complete once it is renamed
from its ``.tmp`` name; incomplete ones are ignored. A folder whose files do not match their
checksums (truncated, overwritten) is moved aside to ``corrupt-step-…`` on resume, and the run
resumes from the one before (:func:`resume_point`). A write that fails (a full disk) leaves
the earlier checkpoints as they were.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from hsae import distributed
from hsae.errors import BadInput, HsaeError
from hsae.store.writer import sync

CHECKSUMS = "checksums.json"
FILES = ("model.safetensors", "optimizer.safetensors", "state.json")


@dataclass
class Checkpoint:
    step: int
    model: dict[str, torch.Tensor]
    optimizer: dict
    extra: dict


def _flatten_optimizer(state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {}
    for idx, per_param in state["state"].items():
        for key, value in per_param.items():
            if torch.is_tensor(value):
                tensors[f"state.{idx}.{key}"] = value.detach().cpu().contiguous()
            else:
                scalars[f"{idx}.{key}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict) -> dict:
    state: dict[int, dict] = {}
    for name, value in tensors.items():
        _, idx, key = name.split(".", 2)
        state.setdefault(int(idx), {})[key] = value
    for name, value in meta["scalars"].items():
        idx, key = name.split(".", 1)
        state.setdefault(int(idx), {})[key] = value
    return {"state": state, "param_groups": meta["param_groups"]}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def save_checkpoint(folder: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    extra: dict, keep: int) -> Path:
    """Write ``folder/step-NNNNNNNN`` atomically and keep only the newest ``keep`` checkpoints.
    A failed write (``OSError``: a full disk, a quota) removes its partial folder and raises
    ``HsaeError`` naming the checkpoint the run will resume from."""
    final = folder / f"step-{step:08d}"
    tmp = folder / f".step-{step:08d}.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
        tensors, meta = _flatten_optimizer(optimizer.state_dict())
        save_file(tensors, tmp / "optimizer.safetensors")
        (tmp / "state.json").write_text(json.dumps({"step": step, "optimizer": meta, "extra": extra}))
        (tmp / CHECKSUMS).write_text(json.dumps({name: _sha256(tmp / name) for name in FILES}))
        for file in tmp.iterdir():
            sync(file)
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        sync(folder)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        kept = latest_checkpoint(folder)
        resume = f"the checkpoint of step {_step(kept)} is intact" if kept else "there is no earlier checkpoint"
        raise HsaeError(f"cannot write the checkpoint of step {step} in {folder} ({exc.strerror or exc}); "
                        f"{resume}: make room and run `hsae run` again to resume") from None
    for old in sorted(folder.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def _step(path: Path) -> int:
    return int(path.name.split("-")[1])


def _checkpoint_folders(folder: Path) -> list[Path]:
    """Complete checkpoint folders, oldest first."""
    return sorted(p for p in folder.glob("step-*") if p.is_dir() and p.name[5:].isdigit() and (p / "state.json").exists())


def latest_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint folder (not yet verified: see :func:`resume_point`)."""
    complete = _checkpoint_folders(folder)
    return complete[-1] if complete else None


def verify_checkpoint(path: Path) -> None:
    """Raise ``BadInput`` unless every file matches ``checksums.json``. A checkpoint of an
    earlier hsae without checksums passes; reading it then checks what it can."""
    listed = path / CHECKSUMS
    if not listed.exists():
        return
    try:
        expected = json.loads(listed.read_text())
    except (OSError, ValueError) as exc:
        raise BadInput(f"checkpoint {path}: {CHECKSUMS} is unreadable ({exc})") from None
    if not isinstance(expected, dict) or set(expected) != set(FILES):
        raise BadInput(f"checkpoint {path}: {CHECKSUMS} does not list {', '.join(FILES)}")
    for name in FILES:
        if not (path / name).is_file():
            raise BadInput(f"checkpoint {path}: {name} is missing")
        if _sha256(path / name) != expected[name]:
            raise BadInput(f"checkpoint {path}: {name} does not match its checksum (truncated or overwritten)")


def load_checkpoint(path: Path) -> Checkpoint:
    """Read a checkpoint after :func:`verify_checkpoint`; ``BadInput`` names what is wrong."""
    verify_checkpoint(path)
    try:
        meta = json.loads((path / "state.json").read_text())
        model = load_file(path / "model.safetensors")
        optimizer = _unflatten_optimizer(load_file(path / "optimizer.safetensors"), meta["optimizer"])
        return Checkpoint(int(meta["step"]), model, optimizer, meta["extra"])
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise BadInput(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); delete it to resume "
                       "from the one before") from None


def resume_point(folder: Path) -> tuple[Checkpoint | None, list[str]]:
    """The newest checkpoint that verifies and reads (None: start from step 0), and one note per
    checkpoint passed over: each corrupt one is moved aside to ``corrupt-step-…`` in ``folder``
    (by the first process of a data-parallel run; the others pass over it alike)."""
    notes = []
    for path in reversed(_checkpoint_folders(folder)):
        try:
            return load_checkpoint(path), notes
        except BadInput as exc:
            aside = path.with_name("corrupt-" + path.name)
            if distributed.is_main():
                shutil.rmtree(aside, ignore_errors=True)
                os.replace(path, aside)
            notes.append(f"{exc}; moved to {aside.name}, resuming from the checkpoint before it")
    return None, notes
