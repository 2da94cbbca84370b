"""Labeller plugins (group ``hsae.labellers``): a short name for a unit of a learned hierarchy.

A unit is a level-1 atom or a level-l latent (l ≥ 2, a cluster of the atoms beneath it). The
core finds each unit's top training images (its largest image-pooled activations; for a
cluster, the sum over its atoms) and hands them over as a :class:`UnitEvidence`; the labeller
returns a :class:`Label`. A unit the labeller cannot name (an unreachable server, a
malformed reply) gets a label with ``error`` set; labelling goes on with the next unit.

A labeller that looks at the pixels sets ``needs_images = True``; the core then fills
:attr:`UnitEvidence.images` (PIL RGB images).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from hsae.interfaces.plugin import Plugin


@dataclass
class UnitEvidence:
    """A unit (``unit_id`` = "level:index") and its top images, best first: their ids, their
    dataset labels (None where the dataset has none), their positions in the store's image
    order and, when asked for, the images."""

    unit_id: str
    level: int
    index: int
    image_ids: list[str]
    image_labels: list[str | None]
    image_numbers: list[int] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)


@dataclass
class Label:
    """A unit's name, words that express it (for the keyword judge), the raw answer it was
    read from, and an error instead when there is none."""

    label: str | None
    keywords: list[str] = field(default_factory=list)
    raw: str = ""
    error: str | None = None

    @classmethod
    def failed(cls, error: str, raw: str = "") -> "Label":
        return cls(None, [], raw, error)

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "keywords": self.keywords, "raw": self.raw, "error": self.error}


class Labeller(Plugin):
    """Base of labeller plugins: one :class:`Label` per :class:`UnitEvidence`."""

    needs_images: ClassVar[bool] = False

    def label(self, units: Sequence[UnitEvidence]) -> list[Label]:
        """A label per unit, in order. Must not raise for one bad unit: its label carries the error."""
        raise NotImplementedError
