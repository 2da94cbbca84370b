"""Seeded per-class sampling used by the paper's dataset recipes (Appendix E.1).

Each class draws from its own generator, seeded by ``(seed, class name)``, so a class's
sample does not change when other classes are added or left out. Inputs are sorted first,
so the result depends only on the set of files, not on the order the disk lists them.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import TypeVar

T = TypeVar("T")


def shuffled(items: Sequence[T], seed: int, key: str) -> list[T]:
    """``sorted(items)`` permuted by a generator seeded with ``f"{seed}/{key}"``."""
    out = sorted(items)
    random.Random(f"{seed}/{key}").shuffle(out)
    return out


def disjoint_halves(items: Sequence[T], per_split: int, seed: int, key: str) -> tuple[list[T], list[T]]:
    """Two disjoint samples of ``m = min(per_split, len(items) // 2)`` items each (train, test),
    both returned in sorted order."""
    order = shuffled(items, seed, key)
    m = min(per_split, len(order) // 2)
    return sorted(order[:m]), sorted(order[m : 2 * m])
