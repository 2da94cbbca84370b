"""``hsae judge RUN --judge ...``: judge a finished steering run again, from its stored captions.

Nothing is generated: the captions come from ``steering.jsonl``; a judge that looks at the
images gets them rebuilt from the image dataset ``steering.json`` names. The new verdicts
are stored beside the earlier judges' and the summary gains the new judge's table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hsae.errors import BadInput
from hsae.run.run_dir import write_json
from hsae.intervene.held_out import image_dataset, images_at
from hsae.steer.judging import Progress, apply_judge, make_judge, read_records, write_records
from hsae.steer.run import RECORDS_FILE, SUMMARY_FILE
from hsae.steer.summary import summarise


def rejudge_run(root: Path, judge_spec: dict[str, Any], progress: Progress | None = None) -> dict:
    """Judge the steering run in ``root`` with ``judge_spec``; returns that judge's summary."""
    root = Path(root)
    records = read_records(root / RECORDS_FILE)
    summary_path = root / SUMMARY_FILE
    if not summary_path.exists():
        raise BadInput(f"{summary_path} does not exist; run `hsae steer {root}` first")
    summary = json.loads(summary_path.read_text())
    judge = make_judge(judge_spec)
    name = judge_spec["name"]
    image_of = None
    if judge.needs_images:
        dataset = image_dataset(summary["images"], f"{summary_path} images")
        items = images_at(dataset, {r["image_number"] for r in records})

        def image_of(record: dict):
            item = items[record["image_number"]]
            if item.image_id != record["image"]:
                raise BadInput(f"image {record['image_number']} of the dataset is now {item.image_id!r}, "
                               f"the steering run saw {record['image']!r}; the images changed")
            return item.image

    apply_judge(judge, name, records, image_of, progress)
    write_records(root / RECORDS_FILE, records)
    summary.setdefault("judges", {})[name] = summarise(records, name)
    write_json(summary_path, summary)
    return summary["judges"][name]
