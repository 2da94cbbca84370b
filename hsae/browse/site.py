"""``hsae browse``: a finished run as a static, self-contained site that opens from disk.

    index.html              the page (inline CSS and JS, no network) with the manifest inline:
                            levels, widths, figures, the top level's unit ids, plot files
    data/group-{l}-{k}.js   the units of level l−1 whose parent is unit k of level l (the tree's
                            children), ``data/group-{l}-orphans.js`` those without a parent
    data/top.js             the units of the top level (the tree's roots)
    data/units-{l}-{c}.js   per unit of level l, in chunks of CHUNK units: the detail pane
                            (histogram, rate, top images, nearest atoms)
    data/search.js          every unit's name and label, loaded on the first search
    plots/*.png             the run's plots; thumbs/*.png: top-image thumbnails when resolvable

Data files are JSON wrapped in one call, ``hsaeData("name", {...})``, so that the page reads
them with script tags, which browsers allow from ``file://`` where fetch is refused.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import numpy as np

from hsae.browse.units import HIST_BINS, LevelStats, level_stats
from hsae.plots import PLOTS_DIR
from hsae.store import ActivationStore
from hsae.trained import TrainedHierarchy

CHUNK = 500
THUMB_SIZE = 72
Progress = Callable[[str], None]


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None or not np.isfinite(value) else round(float(value), digits)


def _write_data(folder: Path, name: str, payload: Any) -> None:
    text = json.dumps(payload, separators=(",", ":"))
    (folder / f"{name}.js").write_text(f"hsaeData({json.dumps(name)},{text});\n")


@dataclass
class RunView:
    """Everything the site is written from."""

    model: TrainedHierarchy
    metrics: dict
    stats: dict[int, LevelStats]
    image_names: list[str] | None

    def hms(self, level: int) -> list[float | None]:
        hms = (self.metrics.get("levels", {}).get(str(level)) or {}).get("hms") or {}
        return hms.get("per_parent") or [None] * self.model.widths[level - 1]

    def label(self, level: int, unit: int) -> str | None:
        return self.model.labels.get((level, unit))

    def summary(self, level: int, unit: int, parents_above: np.ndarray | None,
                children: dict[int, list[list[int]]]) -> dict:
        """One tree row: name, label, HMS (levels ≥ 2), children count, firing rate, parent."""
        entry = {"l": level, "i": unit, "rate": _r(self.stats[level].rate[unit], 5)}
        if level >= 2:
            entry["hms"] = _r(self.hms(level)[unit])
            entry["n"] = len(children[level][unit])
        label = self.label(level, unit)
        if label:
            entry["label"] = label
        if parents_above is not None:
            entry["p"] = int(parents_above[unit])
        return entry


def _children(model: TrainedHierarchy) -> dict[int, list[list[int]]]:
    out = {}
    for level in range(2, model.depth + 1):
        kids: list[list[int]] = [[] for _ in range(model.widths[level - 1])]
        for unit, parent in enumerate(model.parents(level - 1).tolist()):
            if parent >= 0:
                kids[parent].append(unit)
        out[level] = kids
    return out


def _image_names(store: ActivationStore) -> list[str] | None:
    if store.image_index() is None:
        return None
    if store.has("image_ids"):
        return [v.decode() if isinstance(v, bytes) else str(v) for v in store.read("image_ids")]
    return None


def _thumbnails(run_tree: dict, names: list[str] | None, wanted: set[int], folder: Path) -> dict[int, str]:
    """Thumbnails of the wanted images (by store image index) when the run's recipe names an
    image dataset plugin that yields them; {} otherwise."""
    extract = run_tree.get("extract") or {}
    if not wanted or names is None or not isinstance(extract.get("dataset"), dict):
        return {}
    from hsae import registry

    by_name = {names[i]: i for i in wanted if i < len(names)}
    dataset = registry.create("hsae.datasets", extract["dataset"])
    folder.mkdir(parents=True, exist_ok=True)
    found = {}
    for item in dataset:
        index = by_name.get(item.image_id)
        if index is None:
            continue
        thumb = item.image.convert("RGB")
        thumb.thumbnail((THUMB_SIZE, THUMB_SIZE))
        thumb.save(folder / f"{index}.png")
        found[index] = f"thumbs/{index}.png"
        if len(found) == len(by_name):
            break
    return found


def collect(model: TrainedHierarchy, store: ActivationStore, max_rows: int | None = None,
            progress: Progress = lambda text: None) -> RunView:
    metrics_path = model.root / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    stats = {}
    for level in range(1, model.depth + 1):
        progress(f"level {level}: codes over the store")
        stats[level] = level_stats(model, store, level, max_rows)
    return RunView(model, metrics, stats, _image_names(store))


def write_site(view: RunView, out: Path, run_tree: dict | None = None) -> Path:
    """The site in ``out`` (replaced); returns index.html."""
    model = view.model
    if out.exists():
        shutil.rmtree(out)
    data = out / "data"
    data.mkdir(parents=True)
    children = _children(model)
    parents = {level: model.parents(level) for level in range(1, model.depth)}
    top = model.depth
    _write_data(data, "top", [view.summary(top, k, None, children) for k in range(model.widths[top - 1])])
    for level in range(2, model.depth + 1):
        below = level - 1
        above = parents.get(below)
        for k, kids in enumerate(children[level]):
            if kids:
                _write_data(data, f"group-{level}-{k}", [view.summary(below, i, above, children) for i in kids])
        orphans = np.flatnonzero(above < 0).tolist()
        _write_data(data, f"group-{level}-orphans", [view.summary(below, i, above, children) for i in orphans])
    wanted = {i for s in view.stats.values() for units in s.top_images for i, _ in units}
    thumbs = _thumbnails(run_tree or {}, view.image_names, wanted, out / "thumbs")
    for level in range(1, model.depth + 1):
        s = view.stats[level]
        n = model.widths[level - 1]
        pi = parents.get(level)
        sibling = (lambda i, j: int(pi[i] >= 0 and pi[i] == pi[j])) if pi is not None else (lambda i, j: 0)
        for c in range(0, n, CHUNK):
            units = []
            for i in range(c, min(n, c + CHUNK)):
                detail = {"rate": _r(s.rate[i], 5), "max": _r(s.max_code[i]), "hist": s.histogram[i].astype(int).tolist(),
                          "near": [[j, cos, sibling(i, j)] for j, cos in s.nearest[i]]}
                if s.top_images:
                    detail["top"] = [{"name": view.image_names[img] if view.image_names else str(img),
                                      "value": _r(v), "thumb": thumbs.get(img)} for img, v in s.top_images[i]]
                units.append(detail)
            _write_data(data, f"units-{level}-{c // CHUNK}", units)
    _write_data(data, "search", [[level, i, view.label(level, i) or ""]
                                 for level in range(1, model.depth + 1) for i in range(model.widths[level - 1])
                                 if view.label(level, i)])
    plots = []
    if (model.root / PLOTS_DIR).is_dir():
        (out / "plots").mkdir()
        for png in sorted((model.root / PLOTS_DIR).glob("*.png")):
            shutil.copyfile(png, out / "plots" / png.name)
            plots.append(f"plots/{png.name}")
    manifest = {
        "run": str(model.root),
        "method": model.method,
        "widths": model.widths,
        "chunk": CHUNK,
        "bins": HIST_BINS,
        "labels": bool(model.labels),
        "levels": {str(l): {k: _r(v) if isinstance(v, float) else v for k, v in m.items() if k in
                            ("fvu", "l0", "dead", "n_latents", "orphans")} | _hms_summary(m)
                   for l, m in view.metrics.get("levels", {}).items()},
        "plots": plots,
    }
    page = resources.files("hsae.browse").joinpath("page.html").read_text()
    index = out / "index.html"
    index.write_text(page.replace("/*MANIFEST*/null", json.dumps(manifest).replace("</", "<\\/")))
    return index


def _hms_summary(level_metrics: dict) -> dict:
    hms = level_metrics.get("hms")
    if not isinstance(hms, dict):
        return {}
    return {"hms_mean": _r(hms.get("mean")), "hms_null": _r(hms.get("null_mean"))}


def browse_run(run_dir: Path, out: Path, max_rows: int | None = None, progress: Progress = lambda text: None) -> Path:
    """Collect and write the site of a finished run; returns its index.html."""
    from hsae.trained import load

    model = load(run_dir)
    tree = {}
    recipe = model.root / "recipe.yaml"
    if recipe.exists():
        import yaml

        tree = yaml.safe_load(recipe.read_text()) or {}
    with ActivationStore(Path(model.config["store"])) as store:
        view = collect(model, store, max_rows, progress)
    return write_site(view, Path(out), tree)
