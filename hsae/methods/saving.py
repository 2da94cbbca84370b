"""Saving and loading a trained model of any method in a run directory.

A cascade is saved by :meth:`hsae.run.run_dir.RunDir.save_model` (unchanged format). A baseline
writes the same two files: ``model.safetensors`` with its whole state dict and ``config.json``
with the recipe's ``model`` section (``method`` included), ``method`` (its name) and
``train_steps`` (schedules such as P-annealing are built from it), plus the usual ``n_inputs``,
``scale`` and the caller's extras.
"""

from __future__ import annotations

import json
import os

from safetensors.torch import load_file, save_file
from torch import nn

from hsae import __version__
from hsae.cascade.cascade import Cascade
from hsae.errors import BadInput
from hsae.methods import build_model, method_spec
from hsae.recipe.schema import ModelConfig
from hsae.run.run_dir import RunDir, write_json


def save_trained(run: RunDir, model: nn.Module, scale: float, model_section, steps: int, extra: dict) -> None:
    """config.json and model.safetensors of a finished run."""
    if isinstance(model, Cascade):
        run.save_model(model, scale, extra)
        return
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tmp = run.model.with_name(run.model.name + ".tmp")
    save_file(tensors, tmp, metadata={"format": "hsae-method", "hsae_version": __version__})
    os.replace(tmp, run.model)
    write_json(run.config, {
        "hsae_version": __version__,
        "n_inputs": model.n_inputs,
        "scale": scale,
        "method": method_spec(model_section.method)[0],
        "train_steps": steps,
        "model": model_section.model_dump(by_alias=True),
        **extra,
    })


def load_trained(run: RunDir) -> tuple[nn.Module, dict]:
    """The trained model of a finished run (in eval mode) and its config.json."""
    if not run.config.exists() or "method" not in json.loads(run.config.read_text()):
        return run.load_model()
    if not run.model.exists():
        raise BadInput(f"{run.root} is not a finished run: model.safetensors is missing")
    config = json.loads(run.config.read_text())
    model = build_model(config["n_inputs"], ModelConfig.model_validate(config["model"]), config["train_steps"])
    try:
        model.load_state_dict(load_file(run.model))
    except RuntimeError as exc:
        raise BadInput(f"{run.model}: tensors do not match config.json ({exc})") from None
    return model.eval(), config
