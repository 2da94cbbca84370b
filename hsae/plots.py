"""A finished run's figures as PNG files in ``RUN/plots/`` (matplotlib, Agg backend):

    training.png   per level, FVU, L0 and dead share over the logged training steps (metrics.jsonl)
    hms.png        per level ≥ 2, the HMS of every parent against its random-partition null
                   (mean ± 2 standard deviations of the null draws; metrics.json)
    children.png   per level ≥ 2, how many children each unit has (hierarchy.json)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after the backend is chosen)

PLOTS_DIR = "plots"
SERIES = (("fvu", "FVU"), ("l0", "L0 (non-zeros per row)"), ("dead", "dead share"))


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _log_lines(path: Path) -> list[dict]:
    lines = []
    for line in path.read_text().splitlines():
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a line cut by a kill
    return lines


def training_plot(log: Path, out: Path) -> Path | None:
    """FVU, L0 and dead share per level over steps; None when the log is empty."""
    lines = _log_lines(log) if log.exists() else []
    if not lines:
        return None
    levels = sorted({l for line in lines for l in line["levels"]}, key=int)
    fig, axes = plt.subplots(1, len(SERIES), figsize=(4.2 * len(SERIES), 3.4))
    for ax, (key, title) in zip(axes, SERIES):
        for l in levels:
            points = [(line["step"], line["levels"][l][key]) for line in lines
                      if l in line["levels"] and line["levels"][l].get(key) is not None]
            if points:
                ax.plot(*zip(*points), label=f"level {l}")
        ax.set_title(title)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    axes[0].legend()
    return _save(fig, out)


def hms_plot(metrics: dict, out: Path) -> Path | None:
    """Histogram of per-parent HMS per level, with the null's mean ± 2 sd; None without HMS."""
    reports = [(l, m["hms"]) for l, m in sorted(metrics.get("levels", {}).items(), key=lambda kv: int(kv[0]))
               if isinstance(m.get("hms"), dict) and m["hms"].get("mean") is not None]
    if not reports:
        return None
    fig, axes = plt.subplots(1, len(reports), figsize=(4.6 * len(reports), 3.4), squeeze=False)
    for ax, (l, hms) in zip(axes[0], reports):
        values = [v for v in hms["per_parent"] if v is not None]
        mean, sd = hms.get("null_mean"), hms.get("null_std") or 0.0
        if mean is not None:
            ax.axvspan(mean - 2 * sd, mean + 2 * sd, color="tab:gray", alpha=0.25,
                       label=f"null mean ± 2 sd ({hms['null_draws']} draws)")
            ax.axvline(mean, color="tab:gray")
        ax.hist(values, bins=min(30, max(5, len(values) // 2)), color="tab:blue", alpha=0.8,
                label=f"parents (n={len(values)}), mean {hms['mean']:.3f}")
        ax.set_title(f"HMS per parent, level {l}")
        ax.set_xlabel("HMS")
        ax.set_ylabel("parents")
        ax.legend(fontsize=7)
    return _save(fig, out)


def children_plot(hierarchy: dict, out: Path) -> Path | None:
    """Bar chart of the number of children per unit of each level ≥ 2; None without upper levels."""
    levels = hierarchy.get("levels", [])
    if not levels:
        return None
    fig, axes = plt.subplots(1, len(levels), figsize=(4.6 * len(levels), 3.4), squeeze=False)
    for ax, entry in zip(axes[0], levels):
        counts = Counter(len(entry["children"].get(str(k), [])) for k in range(entry["n_latents"]))
        xs = sorted(counts)
        ax.bar(xs, [counts[x] for x in xs], color="tab:green")
        ax.set_title(f"children per unit, level {entry['level']}")
        ax.set_xlabel(f"children (level-{entry['level'] - 1} units)")
        ax.set_ylabel("units")
    return _save(fig, out)


def write_run_plots(root: Path) -> list[Path]:
    """Every plot a finished run's files allow, in ``root/plots/``; returns the paths written."""
    root = Path(root)
    folder = root / PLOTS_DIR
    written = [training_plot(root / "metrics.jsonl", folder / "training.png")]
    if (root / "metrics.json").exists():
        written.append(hms_plot(json.loads((root / "metrics.json").read_text()), folder / "hms.png"))
    if (root / "hierarchy.json").exists():
        written.append(children_plot(json.loads((root / "hierarchy.json").read_text()), folder / "children.png"))
    return [p for p in written if p is not None]


def bar_chart(title: str, groups: list[str], series: dict[str, list[float | None]], out: Path) -> Path:
    """Grouped bars: one group per entry of ``groups``, one bar per series (missing values left out)."""
    fig, ax = plt.subplots(figsize=(max(5.0, 1.2 * len(groups) * max(1, len(series)) / 2 + 2), 3.8))
    width = 0.8 / max(1, len(series))
    for i, (name, values) in enumerate(series.items()):
        xs = [g + i * width for g, v in enumerate(values) if v is not None]
        ax.bar(xs, [v for v in values if v is not None], width, label=name)
    ax.set_xticks([g + width * (len(series) - 1) / 2 for g in range(len(groups))])
    ax.set_xticklabels(groups, rotation=20, ha="right", fontsize=8)
    ax.set_title(title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, out)
