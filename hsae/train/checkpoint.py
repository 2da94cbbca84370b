"""Checkpoints: tensors in safetensors, everything else in JSON; written atomically.

``checkpoints/step-00001200/`` holds ``model.safetensors`` (the cascade's state dict),
``optimizer.safetensors`` (Adam's per-parameter state, named ``state.{i}.{key}``) and
``state.json`` (step, the optimizer's param groups, the RNG state and trainer counters).
A folder is complete once it is renamed from its ``.tmp`` name; incomplete ones are ignored.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from hsae.errors import BadInput


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


def save_checkpoint(folder: Path, step: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    extra: dict, keep: int) -> Path:
    """Write ``folder/step-NNNNNNNN`` atomically and keep only the newest ``keep`` checkpoints."""
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"step-{step:08d}"
    tmp = folder / f".step-{step:08d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}, tmp / "model.safetensors")
    tensors, meta = _flatten_optimizer(optimizer.state_dict())
    save_file(tensors, tmp / "optimizer.safetensors")
    (tmp / "state.json").write_text(json.dumps({"step": step, "optimizer": meta, "extra": extra}))
    for file in tmp.iterdir():
        with open(file, "rb") as handle:
            os.fsync(handle.fileno())
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(folder.glob("step-*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(folder: Path) -> Path | None:
    complete = sorted(p for p in folder.glob("step-*") if (p / "state.json").exists())
    return complete[-1] if complete else None


def load_checkpoint(path: Path) -> Checkpoint:
    try:
        meta = json.loads((path / "state.json").read_text())
        model = load_file(path / "model.safetensors")
        optimizer = _unflatten_optimizer(load_file(path / "optimizer.safetensors"), meta["optimizer"])
    except (OSError, ValueError, KeyError) as exc:
        raise BadInput(f"checkpoint {path} is unreadable ({type(exc).__name__}: {exc}); delete it to resume "
                       "from the one before") from None
    return Checkpoint(meta["step"], model, optimizer, meta["extra"])
