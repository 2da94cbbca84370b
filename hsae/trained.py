"""A finished run read back as a model on raw activations: ``hsae.load(run_dir)``.

The run trained on ``c·x`` (``config.json``'s ``scale`` c, docs/formats.md). Here every level
reads raw activations x and writes raw space: for a level that is an SAE on the activations,

    encode(x, l) = σ_l(W_enc (c·x − b_dec) + b_enc)         (Eq. 1 on c·x)
    decode(z, l) = (W_dec z + b_dec) / c                     (Eq. 2, back to raw space)
    atoms(l)     = W_decᵀ / c                                (n_l, d): decode(z) = z·atoms + b_dec/c

A cascade's level l ≥ 2 is an SAE in R^d as well (it was trained on the atoms of level l−1),
so it encodes activations the same way. A baseline level that is not an SAE on the activations
(a stacked level 2 reads level-1 codes; a clustering level has no encoder) is encoded by the
method itself, and its ``atoms`` are its units in the space the method gives them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from hsae.cascade.cascade import Cascade
from hsae.cascade.hierarchy import NO_PARENT, evaluating
from hsae.errors import BadInput
from hsae.run.run_dir import RunDir
from hsae.sae.sae import SAE

LABELS_FILE = "labels.json"


class TrainedHierarchy:
    """A trained cascade or baseline with its hierarchy and labels (see the module docstring)."""

    def __init__(self, root: Path, model: torch.nn.Module, config: dict, hierarchy: dict | None,
                 labels: dict[str, dict]):
        self.root = root
        self.model = model.eval()
        self.config = config
        self.scale = float(config["scale"])
        self.method = config.get("method", "cascade")
        self._hierarchy = hierarchy
        self._labels = labels

    # ------------------------------------------------------------------ shape

    @property
    def depth(self) -> int:
        return self.model.depth

    @property
    def widths(self) -> list[int]:
        """[n_1, …, n_L]."""
        if isinstance(self.model, Cascade):
            return [self.model.level(l).n_latents for l in range(1, self.depth + 1)]
        return list(self.model.widths)

    @property
    def n_inputs(self) -> int:
        return self.model.n_inputs

    def _check_level(self, level: int) -> None:
        if not 1 <= level <= self.depth:
            raise BadInput(f"{self.root}: level {level} does not exist; the model has levels 1..{self.depth}")

    def sae(self, level: int) -> SAE | None:
        """The SAE of ``level`` when it is an SAE on the activations (its weights in the scaled space)."""
        self._check_level(level)
        if isinstance(self.model, Cascade):
            return self.model.level(level)
        return self.model.activation_sae(level)

    # ----------------------------------------------------------------- coding

    @torch.no_grad()
    def encode(self, x: torch.Tensor, level: int = 1) -> torch.Tensor:
        """(B, n_level) codes of raw activation rows ``x`` (B, d)."""
        x = self._rows(x) * self.scale
        sae = self.sae(level)
        with evaluating(self.model):
            if sae is not None:
                return sae.encode(x).z
            return self.model.row_codes(x)[level - 1]

    @torch.no_grad()
    def decode(self, z: torch.Tensor, level: int = 1) -> torch.Tensor:
        """(B, d) raw-space reconstruction from codes ``z`` (B, n_level)."""
        sae = self._activation_sae(level, "decode")
        return sae.decode(torch.as_tensor(z, dtype=torch.float32)) / self.scale

    @torch.no_grad()
    def atoms(self, level: int = 1) -> torch.Tensor:
        """(n_level, d) the level's units as rows: decoder columns in raw space for an SAE level."""
        sae = self.sae(level)
        if sae is not None:
            return sae.W_dec.t() / self.scale
        return self.model.decoder(level).t().detach().clone()

    def _activation_sae(self, level: int, what: str) -> SAE:
        sae = self.sae(level)
        if sae is None:
            raise BadInput(f"{self.root}: level {level} of a {self.method} model is not an SAE on the activations, "
                           f"so it has no {what}; levels that are: "
                           f"{[l for l in range(1, self.depth + 1) if self.sae(l) is not None]}")
        return sae

    def _rows(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, dtype=torch.float32)
        if x.ndim != 2 or x.shape[1] != self.n_inputs:
            raise BadInput(f"activations must be rows of width {self.n_inputs} (B, {self.n_inputs}); "
                           f"got shape {tuple(x.shape)}")
        return x

    # -------------------------------------------------------------- hierarchy

    def parents(self, level: int = 1) -> np.ndarray:
        """(n_level,) for each unit of ``level``, its parent at level+1 (−1: none), from hierarchy.json."""
        self._check_level(level)
        if level == self.depth:
            raise BadInput(f"{self.root}: level {level} is the top level; its units have no parents")
        if self._hierarchy is None:
            raise BadInput(f"{self.root}: no hierarchy.json; run `hsae eval {self.root}` first")
        return np.asarray(self._hierarchy["levels"][level - 1]["parent"], dtype=np.int64)

    def children(self, level: int, unit: int) -> list[int]:
        """The units of level−1 whose parent is ``unit`` of ``level`` (≥ 2)."""
        if level < 2:
            raise BadInput("level-1 units have no children")
        return np.flatnonzero(self.parents(level - 1) == unit).tolist()

    @property
    def labels(self) -> dict[tuple[int, int], str]:
        """{(level, unit): label} from labels.json ({} when the run has none)."""
        out = {}
        for name, entry in self._labels.items():
            level, unit = (int(part) for part in name.split(":"))
            label = entry.get("label") if isinstance(entry, dict) else entry
            if label:
                out[(level, unit)] = str(label)
        return out

    def __repr__(self) -> str:
        return f"TrainedHierarchy({str(self.root)!r}, method={self.method!r}, widths={self.widths}, scale={self.scale:.4g})"


def read_labels(root: Path) -> dict[str, dict]:
    """labels.json's units ({"level:index": {"label": ...}}), {} when absent."""
    path = Path(root) / LABELS_FILE
    if not path.exists():
        return {}
    try:
        units = json.loads(path.read_text())["units"]
        for name in units:
            level, unit = name.split(":")
            int(level), int(unit)
        return dict(units)
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{path}: not a labels file ({exc!r}); expected {{\"units\": {{\"LEVEL:INDEX\": "
                       "{\"label\": ...}}}}") from None


def load(run_dir: str | Path) -> TrainedHierarchy:
    """The trained model of a finished run directory, on raw activations (see the module docstring)."""
    run = RunDir(Path(run_dir))
    if not run.root.is_dir():
        raise BadInput(f"{run.root}: no such run directory")
    model, config = run.load_model()
    hierarchy = json.loads(run.hierarchy.read_text()) if run.hierarchy.exists() else None
    return TrainedHierarchy(run.root, model, config, hierarchy, read_labels(run.root))


__all__ = ["NO_PARENT", "TrainedHierarchy", "load"]
