"""The records of the clusters a steering run has finished, kept on disk as it goes.

``steering.partial.jsonl`` starts with a fingerprint of what is being steered (the steering
section without its judge and runtime options, the images, the concepts), then holds one
JSON record a line, written cluster by cluster and flushed. A rerun of the same steering
keeps the clusters whose records are all there and generates only the others; a different
fingerprint, or a damaged header, starts over. The file is removed when the run is written.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

PARTIAL_FILE = "steering.partial.jsonl"


class PartialRecords:
    def __init__(self, path: Path, fingerprint: dict, expected: dict[str, int]):
        """``expected``: the number of records a finished cluster has, by cluster."""
        self.path = path
        self.fingerprint = json.loads(json.dumps(fingerprint))  # as it reads back
        kept = self._read()
        counts = Counter(r["cluster"] for r in kept)
        self.finished = {c for c, n in expected.items() if counts[c] == n}
        self.records = [r for r in kept if r["cluster"] in self.finished]
        self._rewrite()

    def _read(self) -> list[dict]:
        if not self.path.exists():
            return []
        lines = self.path.read_text().splitlines()
        try:
            if not lines or json.loads(lines[0]) != self.fingerprint:
                return []
        except json.JSONDecodeError:
            return []
        records = []
        for line in lines[1:]:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut short by a kill: its cluster is incomplete
                continue
        return records

    def _rewrite(self) -> None:
        self._write("w", [self.fingerprint, *self.records])

    def _write(self, mode: str, items: list[dict]) -> None:
        with self.path.open(mode) as f:
            f.write("".join(json.dumps(item) + "\n" for item in items))
            f.flush()
            os.fsync(f.fileno())

    def add(self, cluster: str, records: list[dict]) -> None:
        """Record a finished cluster."""
        self._write("a", records)
        self.records += records
        self.finished.add(cluster)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)
