"""The Table-3-shaped summary of a steering run: per arm, the insertion and suppression rates
with a 95 % Wilson score interval (spec §8).

Insertion rate = share of insertion rows whose caption expresses the concept. Suppression
rate = share of suppression rows whose baseline caption expresses it and whose arm's caption
no longer does. Rows the judge could not answer (an error) are left out of both counts and
reported as ``errors``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float | None, float | None]:
    """The Wilson score interval of k successes in n trials: (p̂ + z²/2n ± z √(p̂(1−p̂)/n + z²/4n²)) / (1 + z²/n)."""
    if n == 0:
        return None, None
    p = k / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return (0.0 if k == 0 else centre - half), (1.0 if k == n else centre + half)


def _cell(k: int, n: int, errors: int) -> dict:
    low, high = wilson(k, n)
    return {"k": k, "n": n, "rate": k / n if n else None, "low": low, "high": high, "errors": errors}


def summarise(records: Iterable[dict], judge: str) -> dict:
    """``{"insertion": {arm: cell}, "suppression": {arm: cell}}`` from steering.jsonl records,
    by the verdicts of ``judge``; a cell is k, n, rate and its 95 % interval, and errors."""
    rows: dict[tuple[str, str, int], dict[str, bool | None]] = {}
    for record in records:
        verdict = record.get("judgements", {}).get(judge)
        key = (record["experiment"], record["cluster"], record["image_number"])
        rows.setdefault(key, {})[record["arm"]] = None if verdict is None else verdict["expressed"]
    counts: dict[str, dict[str, list[int]]] = {"insertion": {}, "suppression": {}}
    for (experiment, _, _), verdicts in rows.items():
        baseline = verdicts.get("baseline")
        for arm, expressed in verdicts.items():
            cell = counts[experiment].setdefault(arm, [0, 0, 0])  # k, n, errors
            if expressed is None or (experiment == "suppression" and baseline is None):
                cell[2] += 1
            elif experiment == "insertion":
                cell[0] += int(expressed)
                cell[1] += 1
            elif baseline:
                cell[0] += int(not expressed)
                cell[1] += 1
    return {experiment: {arm: _cell(*cell) for arm, cell in arms.items()} for experiment, arms in counts.items()}
