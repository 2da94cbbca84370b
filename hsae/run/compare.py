"""``hsae compare``: finished runs side by side, in the shape of the paper's Tables 1 and 4:
one column per run (method or variant), rows HMS min / median / max / mean, HMS_null, parents
counted (|P|), level-1 FVU and L0, and on planted data leaf recovery and the pairwise F1 of
every level's grouping. Runs are grouped by the store they were trained on and the split they
were evaluated on (``split`` of metrics.json): one table per group, titled with the split.
Levels above 2 get their own HMS rows.
"""

from __future__ import annotations

import csv
import io
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from hsae.errors import BadInput
from hsae.run.run_dir import RunDir

SWEEP_FILE = "sweep.json"


@dataclass
class RunSummary:
    root: Path
    label: str
    source: str  # the store it was trained on
    title: str  # the activation source in words
    metrics: dict


@dataclass
class Row:
    name: str
    values: list[float | int | None]
    digits: int  # decimals shown (0: an integer count)


@dataclass
class Comparison:
    title: str
    columns: list[str]
    rows: list[Row] = field(default_factory=list)


def _source_title(tree: dict) -> str:
    data = tree.get("data") or {}
    if data.get("dataset"):
        spec = dict(data["dataset"])
        name = spec.pop("name")
        return f"{name}(" + ", ".join(f"{k}={v}" for k, v in spec.items()) + ")"
    if tree.get("extract"):
        extract = tree["extract"]
        extractor, dataset = extract.get("extractor", {}), extract.get("dataset", {})
        return f"{extractor.get('model')} {extractor.get('layer')} on {dataset.get('name')}"
    return str(data.get("activations"))


def _summary(root: Path, label: str | None = None) -> RunSummary:
    run = RunDir(root)
    if not (run.metrics.exists() and run.config.exists()):
        raise BadInput(f"{root}: not a finished run (no metrics.json or config.json); "
                       "pass run directories or a sweep's --out folder")
    config = json.loads(run.config.read_text())
    tree = run.read_recipe_tree() or {}
    return RunSummary(root, label or config.get("label") or root.name, str(config.get("store")),
                      _source_title(tree), json.loads(run.metrics.read_text()))


def collect_runs(paths: list[Path]) -> list[RunSummary]:
    """Finished runs named by ``paths``; a sweep's folder stands for its variants, in recipe order."""
    runs = []
    for path in paths:
        path = Path(path)
        sweep = path / SWEEP_FILE
        if sweep.exists():
            listed = json.loads(sweep.read_text())["variants"]
            finished = [v for v in listed if (path / v["name"] / "metrics.json").exists()]
            if not finished:
                raise BadInput(f"{path}: none of the sweep's variants has finished yet")
            runs += [_summary(path / v["name"], v["label"]) for v in finished]
        else:
            runs.append(_summary(path))
    if not runs:
        raise BadInput("no runs to compare")
    return runs


def _value(metrics: dict, *keys):
    node = metrics
    for key in keys:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _recovery(metrics: dict, level: int, key: str):
    for entry in _value(metrics, "recovery", "levels") or []:
        if entry["level"] == level:
            return entry[key]
    return None


def _concepts(metrics: dict, level: int) -> str | None:
    """Concepts found (distinct learned ancestors of the leaves' atoms) / planted, as text."""
    found, true = _recovery(metrics, level, "n_learned_used"), _recovery(metrics, level, "n_true")
    return None if found is None else f"{found}/{true}"


def comparison(runs: list[RunSummary], title: str) -> Comparison:
    """One table: a column per run."""
    columns = [r.label for r in runs]
    for i, name in enumerate(columns):
        if columns.count(name) > 1:
            columns[i] = f"{name} ({runs[i].root.name})"
    depth = max(len(r.metrics["levels"]) for r in runs)
    table = Comparison(title, columns)

    def add(name: str, digits: int, get) -> None:
        table.rows.append(Row(name, [get(r.metrics) for r in runs], digits))

    for l in range(2, depth + 1):
        prefix = f"L{l} " if depth > 2 else ""
        for stat in ("min", "median", "max", "mean"):
            add(f"{prefix}HMS {stat}", 4, lambda m, l=l, s=stat: _value(m, "levels", str(l), "hms", s))
        add(f"{prefix}HMS null", 4, lambda m, l=l: _value(m, "levels", str(l), "hms", "null_mean"))
        add(f"{prefix}parents |P|", 0, lambda m, l=l: _value(m, "levels", str(l), "hms", "n_parents"))
    add("FVU", 3, lambda m: _value(m, "levels", "1", "fvu"))
    add("L0", 2, lambda m: _value(m, "levels", "1", "l0"))
    if any("recovery" in r.metrics for r in runs):
        add("leaf recovery", 3, lambda m: _value(m, "recovery", "leaf_recovery"))
        for l in range(2, depth + 1):
            prefix = f"L{l} " if depth > 2 else ""
            add(f"F1 level {l}" if depth > 2 else "sibling F1", 3, lambda m, l=l: _recovery(m, l, "f1"))
            for key in ("precision", "recall", "ari"):
                add(f"{prefix}{key if key != 'ari' else 'ARI'}", 3, lambda m, l=l, k=key: _recovery(m, l, k))
            add(f"{prefix}concepts", 0, lambda m, l=l: _concepts(m, l))  # found/planted
    return table


def comparisons(runs: list[RunSummary]) -> list[Comparison]:
    """One table per store and evaluation split, in the order they first appear; the title names
    the split the figures were computed on."""
    groups: dict[tuple[str, str], list[RunSummary]] = {}
    for run in runs:
        groups.setdefault((run.source, run.metrics.get("split", "train")), []).append(run)
    return [comparison(group, f"{group[0].title}, {split} split") for (_, split), group in groups.items()]


def cell(value, digits: int) -> str:
    if value is None:
        return "–"
    if isinstance(value, str):
        return value
    return str(int(value)) if digits == 0 else f"{value:.{digits}f}"


def _md(text: str) -> str:
    return text.replace("|", "\\|")


def to_markdown(tables: list[Comparison]) -> str:
    out = []
    for table in tables:
        out.append(f"### {table.title}\n")
        out.append("| metric | " + " | ".join(_md(c) for c in table.columns) + " |")
        out.append("|---|" + "---:|" * len(table.columns))
        for row in table.rows:
            out.append(f"| {_md(row.name)} | " + " | ".join(cell(v, row.digits) for v in row.values) + " |")
        out.append("")
    return "\n".join(out)


def to_csv(tables: list[Comparison]) -> str:
    """The same tables as one CSV, full precision: a line per (table, metric), a column per run
    (the union of the tables' columns; empty where a table has no such run)."""
    columns = list(dict.fromkeys(c for table in tables for c in table.columns))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["data", "metric", *columns])
    for table in tables:
        for row in table.rows:
            values = dict(zip(table.columns, row.values))
            writer.writerow([table.title, row.name, *("" if values.get(c) is None else values[c] for c in columns)])
    return buffer.getvalue()


CHART_LEFT_OUT = ("L0",)
"""Rows not drawn in the chart: counts and L0 are not on the 0-1 scale of the others."""


def write_charts(tables: list[Comparison], folder: Path) -> list[Path]:
    """A grouped bar chart per table (``compare.png``, then ``compare-2.png``, …): a group per
    metric on the 0-1 scale (HMS, null, FVU, recovery, F1), a bar per run."""
    from hsae.plots import bar_chart  # matplotlib loads on use

    paths = []
    for i, table in enumerate(tables, start=1):
        rows = [r for r in table.rows if r.digits and r.name not in CHART_LEFT_OUT]
        series = {column: [row.values[j] for row in rows] for j, column in enumerate(table.columns)}
        name = "compare.png" if i == 1 else f"compare-{i}.png"
        paths.append(bar_chart(table.title, [row.name for row in rows], series, folder / name))
    return paths


def write_comparison(tables: list[Comparison], folder: Path) -> list[Path]:
    """``compare.md``, ``compare.csv`` and the charts (``compare.png``, …) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    md, csv_path = folder / "compare.md", folder / "compare.csv"
    md.write_text(to_markdown(tables))
    csv_path.write_text(to_csv(tables))
    return [md, csv_path, *write_charts(tables, folder)]


def default_folder(paths: list[Path]) -> Path:
    """Where ``hsae compare`` writes without ``--out``: a sweep's folder when one is given alone,
    else the folder the runs have in common (beside them)."""
    paths = [Path(p).resolve() for p in paths]
    if len(paths) == 1 and (paths[0] / SWEEP_FILE).exists():
        return paths[0]
    return Path(os.path.commonpath([p.parent for p in paths]))
