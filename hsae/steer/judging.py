"""Judging steering captions, at steering time or again later from ``steering.jsonl``.

One judge row is one (experiment, cluster, image) with every arm's caption. The judge's
verdicts are stored in each record under ``judgements[<judge name>]`` (verdict, reason, raw
answer, error), beside any other judge's, so a run is re-judged without generating again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from hsae import registry
from hsae.errors import BadInput
from hsae.interfaces.judge import Judge, JudgeRow, Verdict

Progress = Callable[[int, int], None]

JUDGE_BATCH = 16
"""Judge rows handed to the plugin per call (the progress bar advances in these steps)."""


def make_judge(spec: dict[str, Any] | str) -> Judge:
    judge = registry.create("hsae.judges", spec)
    if not isinstance(judge, Judge):
        raise BadInput(f"judge {getattr(judge, 'plugin_name', spec)!r} is not an hsae.interfaces.judge.Judge")
    return judge


def row_key(record: dict) -> tuple[str, str, int]:
    return record["experiment"], record["cluster"], record["image_number"]


def judge_rows(records: Sequence[dict]) -> tuple[list[JudgeRow], list[list[dict]]]:
    """The judge rows of ``records`` and, per row, the records (one per arm) it covers."""
    grouped: dict[tuple[str, str, int], list[dict]] = {}
    for record in records:
        grouped.setdefault(row_key(record), []).append(record)
    rows = []
    for (experiment, cluster, number), members in grouped.items():
        first = members[0]
        rows.append(JudgeRow(f"{experiment}/{cluster}/{number}", first["concept"], list(first["keywords"]),
                             {m["arm"]: m["caption"] for m in members}))
    return rows, list(grouped.values())


def apply_judge(judge: Judge, name: str, records: Sequence[dict], image_of: Callable[[dict], Any] | None,
                progress: Progress | None = None) -> None:
    """Judge ``records`` in place: ``record["judgements"][name]`` = the verdict's fields.
    ``image_of(record)`` gives the row's image when the judge needs images."""
    rows, members = judge_rows(records)
    if judge.needs_images:
        if image_of is None:
            raise BadInput(f"judge {name!r} looks at the images, and they cannot be rebuilt for this run")
        for row, group in zip(rows, members):
            row.image = image_of(group[0])
    for start in range(0, len(rows), JUDGE_BATCH):
        batch = rows[start:start + JUDGE_BATCH]
        answers = judge.judge(batch)
        if len(answers) != len(batch):
            raise BadInput(f"judge {name!r} answered {len(answers)} rows for {len(batch)}")
        for row, group, verdicts in zip(batch, members[start:start + JUDGE_BATCH], answers):
            for record in group:
                verdict = verdicts.get(record["arm"]) or Verdict.failed(f"the judge gave no verdict for arm {record['arm']!r}")
                record.setdefault("judgements", {})[name] = verdict.to_dict()
        if progress is not None:
            progress(min(start + JUDGE_BATCH, len(rows)), len(rows))


def read_records(path: Path) -> list[dict]:
    if not path.exists():
        raise BadInput(f"{path} does not exist; run `hsae steer {path.parent}` first")
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise BadInput(f"{path}, line {number}: not JSON ({exc}); the file was damaged") from None
    return records


def write_records(path: Path, records: Sequence[dict]) -> None:
    """All records, one JSON object a line, written under a temporary name and renamed."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as f:
        for record in records:
            f.write(json.dumps(record) + "\n")
    os.replace(tmp, path)
