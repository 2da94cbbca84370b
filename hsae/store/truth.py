"""A planted concept hierarchy: the ground truth that hierarchy-recovery metrics compare to.

Levels are numbered as in the cascade: level 1 holds the leaves (the concepts a level-1 SAE
should find as atoms), level ``L`` the roots. In an activation store the truth lives under
``truth/``: ``truth/level{l}/directions`` ``(n_l, d)`` unit rows and, for ``l < L``,
``truth/level{l}/parent`` ``(n_l,)``, the index of each concept's parent at level ``l + 1``.
The format's marker, the attribute ``hsae_truth = "planted-hierarchy/1"`` of
``truth/level1/directions``, tells this layout from a user's own free-form ``truth/`` group.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

from hsae.errors import BadInput


@dataclass(frozen=True)
class Truth:
    """``directions[l-1]``: level-``l`` concept directions ``(n_l, d)``, l = 1..L;
    ``parents[l-1]``: level-``l`` concept -> its parent at level ``l + 1``, l = 1..L-1."""

    directions: tuple[np.ndarray, ...]
    parents: tuple[np.ndarray, ...]

    def __post_init__(self) -> None:
        if len(self.directions) < 2:
            raise BadInput(f"a planted hierarchy needs at least 2 levels; got {len(self.directions)}")
        if len(self.parents) != len(self.directions) - 1:
            raise BadInput(
                f"a {len(self.directions)}-level hierarchy needs {len(self.directions) - 1} "
                f"parent arrays; got {len(self.parents)}"
            )
        width = self.directions[0].shape[1]
        for level, dirs in enumerate(self.directions, start=1):
            if dirs.ndim != 2 or dirs.shape[1] != width:
                raise BadInput(
                    f"truth level {level}: directions must be (n_{level}, {width}); got {dirs.shape}"
                )
        for level, parent in enumerate(self.parents, start=1):
            n_here, n_above = len(self.directions[level - 1]), len(self.directions[level])
            if parent.shape != (n_here,) or parent.min() < 0 or parent.max() >= n_above:
                raise BadInput(
                    f"truth level {level}: parent must be ({n_here},) with values in "
                    f"[0, {n_above}); got shape {parent.shape}, range "
                    f"[{parent.min()}, {parent.max()}]"
                )

    @property
    def depth(self) -> int:
        return len(self.directions)

    @property
    def leaves(self) -> np.ndarray:
        return self.directions[0]

    def ancestors(self, level: int) -> np.ndarray:
        """Index of each leaf's ancestor at ``level`` (level 1: the leaf itself)."""
        if not 1 <= level <= self.depth:
            raise BadInput(f"level must be in 1..{self.depth}; got {level}")
        index = np.arange(len(self.leaves))
        for parent in self.parents[: level - 1]:
            index = parent[index]
        return index


MARKER_NAME, MARKER = "hsae_truth", "planted-hierarchy/1"
MARKED_DATASET = "truth/level1/directions"


class _Writer(Protocol):
    def put(self, name: str, array: np.ndarray, attrs: dict | None = None) -> None: ...


class _Store(Protocol):
    def has(self, name: str) -> bool: ...
    def read(self, name: str) -> np.ndarray: ...
    def dataset_attrs(self, name: str) -> dict: ...


def write_truth(writer: _Writer, truth: Truth) -> None:
    """Put ``truth`` into an activation store being written, under ``truth/``, with the marker."""
    for level, dirs in enumerate(truth.directions, start=1):
        attrs = {MARKER_NAME: MARKER} if level == 1 else None
        writer.put(f"truth/level{level}/directions", dirs.astype(np.float32), attrs)
    for level, parent in enumerate(truth.parents, start=1):
        writer.put(f"truth/level{level}/parent", parent.astype(np.int64))


def has_marked_truth(store: _Store) -> bool:
    """Whether the store's ``truth/`` is a planted hierarchy in this format (it carries the marker)."""
    if not store.has(MARKED_DATASET):
        return False
    try:
        return store.dataset_attrs(MARKED_DATASET).get(MARKER_NAME) == MARKER
    except BadInput:  # a group where the dataset should be, or unreadable attributes
        return False


def load_truth(store: _Store) -> Truth:
    """Read the ``truth/`` group of an activation store (``hsae.store.ActivationStore``)."""
    directions, parents = [], []
    level = 1
    while store.has(f"truth/level{level}/directions"):
        directions.append(np.asarray(store.read(f"truth/level{level}/directions"), dtype=np.float64))
        if store.has(f"truth/level{level}/parent"):
            parents.append(np.asarray(store.read(f"truth/level{level}/parent"), dtype=np.int64))
        level += 1
    if not directions:
        raise BadInput(
            f"activation store {getattr(store, 'path', store)} has no planted hierarchy: "
            "dataset 'truth/level1/directions' is missing"
        )
    return Truth(tuple(directions), tuple(parents))
