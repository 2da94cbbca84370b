"""Judge plugins (group ``hsae.judges``): does a caption express a concept? (spec §8)

A steering run asks the judge once per row, one row being a (cluster, image, experiment) with
the caption of every arm. A judge answers per arm with a :class:`Verdict`: ``expressed``
(True/False), a one-sentence ``reason``, and the ``raw`` answer it parsed (stored in
``steering.jsonl`` so the run can be re-read and re-judged without generating again). A row
the judge cannot answer (an unreachable server, a malformed reply) gets a verdict with
``expressed = None`` and ``error`` set; the run records it and goes on.

A judge that looks at the image sets ``needs_images = True``; the core then fills
:attr:`JudgeRow.image` (a PIL RGB image).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from hsae.interfaces.plugin import Plugin


@dataclass
class JudgeRow:
    """One question: do these captions of one image express ``concept``?

    ``concept`` is the concept's name (e.g. "table"); ``keywords`` are words that express it
    (from the run's labels or the recipe); ``captions`` maps an arm name to its caption.
    """

    row_id: str
    concept: str
    keywords: list[str]
    captions: dict[str, str]
    image: Any = None


@dataclass
class Verdict:
    """The judge's answer for one caption; ``expressed is None`` exactly when ``error`` is set."""

    expressed: bool | None
    reason: str = ""
    raw: str = ""
    error: str | None = None

    @classmethod
    def failed(cls, error: str, raw: str = "") -> "Verdict":
        return cls(None, "", raw, error)

    def to_dict(self) -> dict[str, Any]:
        return {"expressed": self.expressed, "reason": self.reason, "raw": self.raw, "error": self.error}


class Judge(Plugin):
    """Base of judge plugins: verdicts by arm for every :class:`JudgeRow`."""

    needs_images: ClassVar[bool] = False

    def judge(self, rows: Sequence[JudgeRow]) -> list[dict[str, Verdict]]:
        """Verdicts for every arm of every row, in order. Must not raise for one bad row:
        that row's verdicts carry the error instead."""
        raise NotImplementedError
