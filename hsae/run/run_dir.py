"""The run directory: every file a run writes, and loading a finished model back.

    recipe.yaml         the resolved recipe (overrides applied)
    config.json         what is needed to rebuild the model: method, width, scale, model section,
                        training length, versions
    model.safetensors   the model's state (a cascade: levels.{l}.W_enc (n_l, d), levels.{l}.b_enc,
                        levels.{l}.W_dec (d, n_l), levels.{l}.b_dec, levels.{l}.encoder.*)
    metrics.jsonl       one JSON line per logged step
    metrics.json        final figures per level (reconstruction, health, HMS, recovery)
    hierarchy.json      per level, the parent of every atom (−1: none) and the children of every latent
    checkpoints/        step-NNNNNNNN/ folders (hsae.train.checkpoint)
    activations.h5      the store, when the recipe's data came from a dataset plugin
    test_activations.h5 the test store, when the extraction stage draws a test split
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import yaml
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from hsae.version import __version__
from hsae.errors import BadInput
from hsae.methods import build_model, method_spec
from hsae.recipe.schema import ModelConfig

FORMAT = "hsae-model"
"""The ``format`` of model.safetensors; ``hsae-cascade`` (a cascade's ``levels.*`` tensors only)
and ``hsae-method`` (a baseline's whole state), written before one save served every method, are
read too."""

TRAINING_ONLY = frozenset({"monitors", "b_dec_ready", "window"})
"""State under these names (the firing monitors, the flags that each SAE's b_dec was initialised,
level 1's firing window for level 2's next settle) is kept in checkpoints, not in model.safetensors."""


def _training_only(key: str) -> bool:
    return not TRAINING_ONLY.isdisjoint(key.split("."))


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` through a temp file renamed over ``path``: a reader (another process of a
    data-parallel run) sees the old file or the new one, never a part, and a crash mid-write
    leaves the old one."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, data) -> None:
    write_atomically(path, json.dumps(data, indent=2))


@contextlib.contextmanager
def reading(root: Path) -> Iterator[None]:
    """Errors of reading the files of the run directory ``root`` (damaged, cut short, or written by
    an incompatible hsae version) as ``BadInput`` naming it."""
    try:
        yield
    except BadInput:
        raise
    except (OSError, ValueError, KeyError, IndexError, TypeError, RuntimeError, SafetensorError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())[:300]
        raise BadInput(f"{root}: cannot read this run directory ({type(exc).__name__}: {detail}); it is damaged or "
                       "was written by an incompatible hsae version: `hsae run RECIPE --out DIR --fresh` remakes it") from None


@dataclass(frozen=True)
class RunDir:
    root: Path

    recipe = property(lambda self: self.root / "recipe.yaml")
    config = property(lambda self: self.root / "config.json")
    model = property(lambda self: self.root / "model.safetensors")
    log = property(lambda self: self.root / "metrics.jsonl")
    metrics = property(lambda self: self.root / "metrics.json")
    hierarchy = property(lambda self: self.root / "hierarchy.json")
    checkpoints = property(lambda self: self.root / "checkpoints")
    store = property(lambda self: self.root / "activations.h5")
    test_store = property(lambda self: self.root / "test_activations.h5")

    def write_recipe(self, tree: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        write_atomically(self.recipe, yaml.safe_dump(tree, sort_keys=False))

    def read_recipe_tree(self) -> dict | None:
        if not self.recipe.exists():
            return None
        with reading(self.root):
            tree = yaml.safe_load(self.recipe.read_text())
        if not isinstance(tree, dict):
            raise BadInput(f"{self.recipe}: not a recipe (a YAML mapping); remake the run with --fresh")
        return tree

    def save_model(self, model: nn.Module, scale: float, model_section: ModelConfig, steps: int,
                   extra: dict | None = None) -> None:
        """config.json and model.safetensors of a trained model of any method (docs/formats.md)."""
        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items() if not _training_only(k)}
        tmp = self.model.with_name(self.model.name + ".tmp")
        save_file(tensors, tmp, metadata={"format": FORMAT, "hsae_version": __version__})
        os.replace(tmp, self.model)
        write_json(self.config, {
            "hsae_version": __version__,
            "n_inputs": model.n_inputs,
            "scale": scale,
            "method": method_spec(model_section.method)[0],
            "train_steps": steps,
            "model": model_section.model_dump(by_alias=True),
            **(extra or {}),
        })

    def load_model(self) -> tuple[nn.Module, dict]:
        """Rebuild the trained model of a finished run with its method; returns it (in eval mode)
        and config.json."""
        if not (self.config.exists() and self.model.exists()):
            raise BadInput(f"{self.root} is not a finished run: config.json or model.safetensors is missing")
        config = json.loads(self.config.read_text())
        # A cascade saved as hsae-cascade has no training length and no method in its model
        # section (the cascade, which needs no length, is the section's default method).
        model = build_model(config["n_inputs"], ModelConfig.model_validate(config["model"]), config.get("train_steps", 0))
        try:
            missing, unexpected = model.load_state_dict(load_file(self.model), strict=False)
        except RuntimeError as exc:  # a tensor of another shape
            raise BadInput(f"{self.model}: tensors do not match config.json ({exc})") from None
        missing = [k for k in missing if not _training_only(k)]
        if missing or unexpected:
            raise BadInput(f"{self.model}: tensors do not match config.json (missing {missing}, unexpected {unexpected})")
        return model.eval(), config
