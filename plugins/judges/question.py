"""The paper's judge question (Appendix E.6) and the parsing of its answer.

A row's captions are shown under labels A, B, C, … in a per-row random order (seeded by the
row's id and the judge's seed), so a judge cannot tell the arms apart; the model answers,
for each label, whether the caption semantically expresses the concept, with a one-sentence
reason, as JSON: ``{"A": {"expressed": true, "reason": "..."}, ...}``.
"""

from __future__ import annotations

import hashlib
import string
from typing import Any

import numpy as np

from hsae.interfaces.judge import JudgeRow, Verdict
from hsae_plugins.chat_completions import json_object


def labelled_arms(row: JudgeRow, seed: int) -> dict[str, str]:
    """label → arm under the row's permutation."""
    arms = sorted(row.captions)
    digest = int.from_bytes(hashlib.sha256(f"{seed}/{row.row_id}".encode()).digest()[:8], "little")
    order = np.random.default_rng(digest).permutation(len(arms))
    return {string.ascii_uppercase[i]: arms[j] for i, j in enumerate(order)}


def question(row: JudgeRow, labels: dict[str, str]) -> str:
    listed = "\n".join(f"{label}: {row.captions[arm]}" for label, arm in labels.items())
    keys = ", ".join(f'"{label}"' for label in labels)
    return (f'Here are {len(labels)} captions of the image, labelled {", ".join(labels)}.\n{listed}\n\n'
            f'For each label, does the caption semantically express the concept "{row.concept}"? '
            f'Answer with one JSON object with the keys {keys}, each '
            '{"expressed": true or false, "reason": "one sentence"}, and nothing else.')


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("yes", "true", "no", "false"):
        return value.strip().lower() in ("yes", "true")
    raise ValueError(f"'expressed' is {value!r}, not true or false")


def verdicts_from(answer: str, labels: dict[str, str]) -> dict[str, Verdict]:
    """Each arm's verdict from the model's answer; a malformed answer gives every arm an error
    verdict that keeps the raw answer."""
    try:
        parsed = json_object(answer)
        verdicts = {}
        for label, arm in labels.items():
            entry = parsed.get(label)
            if not isinstance(entry, dict) or "expressed" not in entry:
                raise ValueError(f"no verdict for label {label}")
            verdicts[arm] = Verdict(_flag(entry["expressed"]), str(entry.get("reason", "")), answer)
        return verdicts
    except ValueError as exc:
        return {arm: Verdict.failed(f"malformed answer: {exc}", answer) for arm in labels.values()}
