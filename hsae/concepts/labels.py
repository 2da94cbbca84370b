"""Concept labels (``labels.json`` in the run directory): a name per atom and per cluster.

Each unit's top-T training images (``hsae.concepts.top_images``; a unit that fired on no
image is left out) go to a labeller plugin, whose answer is stored with the images it saw:

    {"units": {"2:17": {"label": "vehicle", "keywords": ["car", "truck"], "raw": "...",
                        "error": null, "labeller": "class_names", "top_images": ["id", ...]}}}

Labelling again updates the units it labels and keeps the others, so atoms and clusters can
be named by different labellers.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from hsae import registry
from hsae.concepts.top_images import Coder, image_names, top_images
from hsae.concepts.units import Hierarchy, unit_id
from hsae.errors import BadInput
from hsae.interfaces.labeller import Label, Labeller, UnitEvidence
from hsae.intervene.run_model import RunModel
from hsae.run.run_dir import write_json
from hsae.store import ActivationStore

LABELS_FILE = "labels.json"
STORE_LABELS = "labels"
"""The store's per-image dataset labels (written by the extraction stage)."""

Progress = Callable[[int, int], None]
LABEL_BATCH = 16


def labels_path(root: Path) -> Path:
    return Path(root) / LABELS_FILE


def read_labels(root: Path) -> dict[str, dict]:
    """The run's labels by unit name ({} when it has none)."""
    path = labels_path(root)
    if not path.exists():
        return {}
    try:
        return dict(json.loads(path.read_text())["units"])
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise BadInput(f"{path}: not a labels file ({exc}); delete it and run `hsae label {root}` again") from None


def _store_labels(store: ActivationStore) -> list[str | None]:
    if not store.has(STORE_LABELS):
        return [None] * (store.n_images or 0)
    return [(v.decode() if isinstance(v, bytes) else str(v)) or None for v in store.read(STORE_LABELS)]


def unit_evidence(rm: RunModel, store: ActivationStore, units: Sequence[tuple[int, int]], T: int) -> list[UnitEvidence]:
    """Every unit's top-T images (numbers, ids and dataset labels), best first; units that fired
    on no image are left out."""
    hierarchy = Hierarchy.read(rm.run.hierarchy)
    coder = Coder(rm.sae.sae, rm.scale, "encoder")
    names, labels = image_names(store), _store_labels(store)
    atoms = [index for level, index in units if level == 1]
    clusters = [(level, index) for level, index in units if level > 1]
    found: dict[tuple[int, int], tuple[torch.Tensor, torch.Tensor]] = {}
    if atoms:
        scores, best = top_images(store, coder, None, T)
        for index in atoms:
            found[(1, index)] = scores[rm.sae.offset + index], best[rm.sae.offset + index]
    if clusters:
        membership = hierarchy.membership(clusters, rm.sae.sae.n_latents, rm.sae.offset)
        scores, best = top_images(store, coder, membership, T)
        for u, unit in enumerate(clusters):
            found[unit] = scores[u], best[u]
    evidence = []
    for level, index in units:
        scores, best = found[(level, index)]
        numbers = [int(n) for s, n in zip(scores.tolist(), best.tolist()) if n >= 0 and s > 0]
        if numbers:
            evidence.append(UnitEvidence(unit_id(level, index), level, index, [names[n] for n in numbers],
                                         [labels[n] for n in numbers], image_numbers=numbers))
    return evidence


def default_units(hierarchy: Hierarchy, levels: Sequence[int] | None) -> list[tuple[int, int]]:
    """Every atom (level 1) and every latent with children (levels ≥ 2) of ``levels`` (default: all)."""
    chosen = levels or range(1, hierarchy.depth + 1)
    units = []
    for level in chosen:
        hierarchy.check_level(level)
        indices = range(hierarchy.widths[0]) if level == 1 else sorted(hierarchy.children[level])
        units += [(level, k) for k in indices]
    return units


def label_run(root: Path, labeller_spec: dict[str, Any], levels: Sequence[int] | None = None,
              T: int = 10, max_units: int | None = None, progress: Progress | None = None,
              units: Sequence[tuple[int, int]] | None = None) -> dict[str, dict]:
    """Label ``units`` (default: those of ``levels``, at most ``max_units``) with the labeller
    plugin and update ``labels.json``; returns the new labels by unit."""
    labeller = registry.create("hsae.labellers", labeller_spec)
    if not isinstance(labeller, Labeller):
        raise BadInput(f"labeller {labeller_spec.get('name')!r} is not an hsae.interfaces.labeller.Labeller")
    rm = RunModel.open(root)
    hierarchy = Hierarchy.read(rm.run.hierarchy)
    with rm.store() as store:
        chosen = list(units) if units is not None else default_units(hierarchy, levels)
        evidence = unit_evidence(rm, store, chosen, T)[:max_units]
        if labeller.needs_images:
            _attach_images(store, evidence)
    fresh: dict[str, dict] = {}
    for start in range(0, len(evidence), LABEL_BATCH):
        batch = evidence[start:start + LABEL_BATCH]
        answers = labeller.label(batch)
        if len(answers) != len(batch):
            raise BadInput(f"labeller {labeller_spec['name']!r} answered {len(answers)} units for {len(batch)}")
        for unit, answer in zip(batch, answers):
            if not isinstance(answer, Label):
                answer = Label.failed(f"the labeller returned {type(answer).__name__}, not a Label")
            fresh[unit.unit_id] = {**answer.to_dict(), "labeller": labeller_spec["name"], "top_images": unit.image_ids}
        if progress is not None:
            progress(min(start + LABEL_BATCH, len(evidence)), len(evidence))
    units = {**read_labels(root), **fresh}
    write_json(labels_path(root), {"top_images": T, "units": units})
    return fresh


def _attach_images(store: ActivationStore, evidence: Sequence[UnitEvidence]) -> None:
    """Fill each unit's images from the dataset the store was extracted from."""
    from hsae.extract.embeddings import store_images

    wanted = {n for unit in evidence for n in unit.image_numbers}
    images = {n: item.image for n, item in enumerate(store_images(store)) if n in wanted}
    for unit in evidence:
        unit.images = [images[n] for n in unit.image_numbers]
