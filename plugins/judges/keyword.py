"""``keyword``: a caption expresses a concept when it contains one of the concept's words.

Words are compared after lower-casing, dropping punctuation and reducing plurals to the
singular ("boxes" → "box", "ponies" → "pony", "cars" → "car"); a keyword of several words
matches the same words in a row. The words are the row's keywords (from the run's labels or
``steer.concepts``) plus any the ``words`` option adds per concept.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from pydantic import Field

from hsae.interfaces.judge import Judge, JudgeRow, Verdict
from hsae.interfaces.plugin import PluginConfig

_WORD = re.compile(r"[a-z0-9]+")


def singular(word: str) -> str:
    """A plain English singular: -ies → -y, -(s|x|z|ch|sh)es → drop -es, -s → drop (not -ss)."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("es") and re.search(r"(s|x|z|ch|sh)es$", word):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def normalised(text: str) -> list[str]:
    return [singular(w) for w in _WORD.findall(text.lower())]


def find_phrase(words: list[str], phrase: list[str]) -> bool:
    n = len(phrase)
    return n > 0 and any(words[i:i + n] == phrase for i in range(len(words) - n + 1))


class KeywordConfig(PluginConfig):
    words: dict[str, list[str]] = Field(
        default_factory=dict, description="extra words per concept name, e.g. {table: [desk, counter]}")


class KeywordJudge(Judge):
    """Word lists: a caption expresses the concept if it contains one of its words (case and plural normalised)."""

    Config = KeywordConfig

    def judge(self, rows: Sequence[JudgeRow]) -> list[dict[str, Verdict]]:
        return [self._row(row) for row in rows]

    def _row(self, row: JudgeRow) -> dict[str, Verdict]:
        keywords = [*row.keywords, *self.config.words.get(row.concept, [])] or [row.concept]
        phrases = [(k, normalised(k)) for k in keywords]
        verdicts = {}
        for arm, caption in row.captions.items():
            words = normalised(caption)
            hit = next((k for k, phrase in phrases if find_phrase(words, phrase)), None)
            if hit is None:
                verdicts[arm] = Verdict(False, f"none of {keywords} appears in the caption", "")
            else:
                verdicts[arm] = Verdict(True, f"the caption mentions {hit!r}", hit)
        return verdicts
