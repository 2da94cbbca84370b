"""Units of a learned hierarchy (``hierarchy.json``) and the level-1 atoms beneath them.

A unit is named ``"l:k"``: latent ``k`` of level ``l`` (``"1:j"`` is atom ``j``). The atoms
beneath a level-l latent are its children's atoms, recursively: a level-3 concept owns every
level-1 atom under its level-2 children.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch

from hsae.errors import BadInput


def unit_id(level: int, index: int) -> str:
    return f"{level}:{index}"


def parse_unit(text: str) -> tuple[int, int]:
    """(level, index) of ``"l:k"``."""
    try:
        level, index = (int(part) for part in str(text).split(":"))
    except ValueError:
        raise BadInput(f"{text!r} is not a unit name; expected LEVEL:INDEX such as 2:17") from None
    return level, index


@dataclass(frozen=True)
class Hierarchy:
    """Widths [n₁, …, n_L] and, per level l ≥ 2, the children (level l−1 indices) of each latent."""

    widths: list[int]
    children: dict[int, dict[int, list[int]]]

    @classmethod
    def read(cls, path: Path) -> "Hierarchy":
        if not path.exists():
            raise BadInput(f"{path} does not exist; run `hsae eval {path.parent}` to write it")
        data = json.loads(path.read_text())
        children = {entry["level"]: {int(k): list(v) for k, v in entry["children"].items()} for entry in data["levels"]}
        return cls(list(data["widths"]), children)

    @property
    def depth(self) -> int:
        return len(self.widths)

    def check_level(self, level: int) -> None:
        if not 1 <= level <= self.depth:
            raise BadInput(f"level {level} does not exist; this hierarchy has levels 1..{self.depth}")

    def atoms(self, level: int, index: int) -> list[int]:
        """The level-1 atoms beneath latent ``index`` of ``level`` (itself at level 1)."""
        self.check_level(level)
        if not 0 <= index < self.widths[level - 1]:
            raise BadInput(f"latent {index} does not exist at level {level} (0..{self.widths[level - 1] - 1})")
        below = [index]
        for l in range(level, 1, -1):
            below = [c for k in below for c in self.children[l].get(k, [])]
        return sorted(below)

    def clusters(self, level: int) -> list[int]:
        """Level-``level`` latents (l ≥ 2) with at least two children."""
        self.check_level(level)
        if level < 2:
            raise BadInput("clusters are latents of level 2 or above (level 1 holds the atoms)")
        return sorted(k for k, c in self.children[level].items() if len(c) >= 2)

    def membership(self, units: list[tuple[int, int]], n_columns: int, offset: int = 0) -> torch.Tensor:
        """(n_columns, U) 0/1 matrix: column u marks the atoms beneath unit u, shifted by ``offset``
        (the level-1 block of a larger dictionary)."""
        matrix = torch.zeros(n_columns, len(units))
        for u, (level, index) in enumerate(units):
            matrix[[offset + a for a in self.atoms(level, index)], u] = 1.0
        return matrix
