"""A steering run (spec §8): captions per (cluster, image, arm) with the clamp written back,
judged, written to ``steering.jsonl``, summarised in ``steering.json``.

For each cluster, ``images_per_cluster`` held-out images get a baseline caption (no hook)
and one caption per arm with the arm's atoms clamped to ``c = α μ_C`` (insertion) and, with
``suppression``, to 0. The same baseline caption stands in both experiments. The judge
answers per row; suppression is scored on the rows whose baseline expresses the concept.
Finished clusters are kept in ``steering.partial.jsonl`` (``hsae.steer.partial``) until the
run is written, so an interrupted run resumes.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import torch

from hsae.concepts.labels import label_run, read_labels
from hsae.concepts.top_images import image_names
from hsae.concepts.units import Hierarchy
from hsae.errors import BadInput
from hsae.intervene.held_out import draw, held_out_numbers, image_dataset, images_at
from hsae.intervene.run_model import RunModel
from hsae.intervene.write_back import Splice, spliced
from hsae.run.run_dir import write_json
from hsae.steer.config import Concept, SteerConfig
from hsae.steer.judging import apply_judge, make_judge, write_records
from hsae.steer.partial import PARTIAL_FILE, PartialRecords
from hsae.steer.plan import Arm, ClusterPlan, plan_clusters
from hsae.steer.summary import summarise

RECORDS_FILE = "steering.jsonl"
SUMMARY_FILE = "steering.json"

Progress = Callable[[int, int], None]


def clamp_edit(latents: list[int], value: float):
    """z → z with ``z[:, latents] = value`` (a new tensor)."""
    def edit(z: torch.Tensor) -> torch.Tensor:
        return z.index_fill(1, torch.tensor(latents, device=z.device), value)

    return edit


def concepts_of(plans: list[ClusterPlan], config: SteerConfig, root: Path) -> dict[str, Concept]:
    """Each cluster's concept: from ``steer.concepts``, else from the run's labels.json, where
    ``steer.labeller`` first labels the clusters that have neither."""
    labels = read_labels(root)
    unnamed = [(p.level, p.index) for p in plans if p.unit not in config.concepts and not labels.get(p.unit, {}).get("label")]
    if unnamed and config.labeller is not None:
        label_run(root, config.labeller, T=config.top_images, units=unnamed)
        labels = read_labels(root)
    concepts, missing = {}, []
    for plan in plans:
        given = config.concepts.get(plan.unit)
        label = labels.get(plan.unit, {})
        if isinstance(given, str):
            concepts[plan.unit] = Concept(name=given, keywords=[given])
        elif given is not None:
            concepts[plan.unit] = Concept(name=given.name, keywords=given.keywords or [given.name])
        elif label.get("label"):
            concepts[plan.unit] = Concept(name=label["label"], keywords=label.get("keywords") or [label["label"]])
        else:
            missing.append(plan.unit)
    if missing:
        raise BadInput(f"clusters {', '.join(missing)} have no concept to judge (no label, or its labeller failed: "
                       f"see {root / 'labels.json'}): run `hsae label {root}` "
                       f"or name them in steer.concepts (e.g. --set 'steer.concepts={{\"{missing[0]}\": table}}')")
    return concepts


def _batches(numbers: list[int], size: int):
    for start in range(0, len(numbers), size):
        yield numbers[start:start + size]


class Captioner:
    """Greedy captions of a batch of images with an arm's clamp written back (no hook for the
    baseline), counting the images captioned for the progress bar."""

    def __init__(self, extractor, saes: dict[str, tuple], config: SteerConfig, total: int, done: int,
                 progress: Progress | None):
        self.extractor, self.module, self.saes, self.config = extractor, extractor.target_module, saes, config
        self.total, self.done, self.progress = total, done, progress

    def __call__(self, images, arm: Arm | None, factor: float) -> list[str]:
        splice = None
        if arm is not None:
            sae, scale = self.saes[arm.which]
            splice = Splice(sae, scale, self.config.write_back, self.config.code, clamp_edit(arm.latents, arm.clamp * factor))
        with spliced(self.module, splice):
            out = self.extractor.generate(images, self.config.prompt, self.config.max_new_tokens)
        self.done += len(images)
        if self.progress is not None:
            self.progress(self.done, self.total)
        return out


def cluster_records(plan: ClusterPlan, concept: Concept, numbers: list[int], items, caption: Captioner,
                    experiments: list[tuple[str, float]], batch_size: int) -> list[dict]:
    """One record per (experiment, image, arm) of one cluster; the baseline caption is shared."""
    records = []
    for batch in _batches(numbers, batch_size):
        images = [items[n].image for n in batch]
        baseline = caption(images, None, 0.0)
        for experiment, factor in experiments:
            for arm, texts in [(None, baseline)] + [(arm, caption(images, arm, factor)) for arm in plan.arms]:
                for n, text in zip(batch, texts):
                    records.append({
                        "cluster": plan.unit, "concept": concept.name, "keywords": concept.keywords,
                        "experiment": experiment, "image": items[n].image_id, "image_number": n,
                        "arm": "baseline" if arm is None else arm.name, "sae": None if arm is None else arm.which,
                        "clamp": 0.0 if arm is None else arm.clamp * factor,
                        "latents": [] if arm is None else arm.latents, "caption": text})
    return records


def _matched(config: SteerConfig, rm: RunModel):
    """(ModelSAE, scale) of ``steer.matched_run``, or None."""
    if config.matched_run is None:
        return None
    other = RunModel.open(config.matched_run)
    if other.sae.sae.n_inputs != rm.sae.sae.n_inputs:
        raise BadInput(f"steer.matched_run: {config.matched_run} reads rows of width {other.sae.sae.n_inputs}, "
                       f"this run {rm.sae.sae.n_inputs}; the matched run must be trained on the same layer")
    return other.sae, other.scale


def run_steering(root: Path, config: SteerConfig, progress: Progress | None = None,
                 judge_progress: Progress | None = None) -> dict:
    """Generate, judge and write the steering run of the finished run at ``root``; returns the
    summary. A rerun after an interruption keeps the clusters already captioned."""
    root = Path(root)
    rm = RunModel.open(root)
    judge = make_judge(config.judge)  # a bad judge spec fails before anything is generated
    matched = _matched(config, rm)
    with rm.store() as store:
        plans = plan_clusters(store, Hierarchy.read(rm.run.hierarchy), rm.sae, rm.scale, config, matched)
        training = set(image_names(store)) if config.exclude_training else set()
    concepts = concepts_of(plans, config, root)
    images_spec = config.images or rm.dataset_spec()
    dataset = image_dataset(images_spec, "steer.images")
    draws = draw(held_out_numbers(dataset, training), len(plans), config.images_per_cluster, config.seed, "steer.images")
    items = images_at(dataset, {n for numbers in draws for n in numbers})
    experiments = [("insertion", 1.0)] + ([("suppression", 0.0)] if config.suppression else [])
    fingerprint = {"config": json.loads(config.model_dump_json(exclude={"judge", "batch_size", "extractor"})),
                   "images": images_spec, "draws": draws, "concepts": {u: c.model_dump() for u, c in concepts.items()}}
    per_image = len(experiments) * (1 + len(plans[0].arms))
    partial = PartialRecords(root / PARTIAL_FILE, fingerprint,
                             {p.unit: len(numbers) * per_image for p, numbers in zip(plans, draws)})
    extractor = rm.extractor(config.extractor)
    device = next(extractor.target_module.parameters()).device
    saes = {"run": (rm.sae.sae.to(device), rm.scale)}
    if matched is not None:
        saes["matched"] = (matched[0].sae.to(device), matched[1])
    calls = 1 + len(experiments) * len(plans[0].arms)  # captions per image
    caption = Captioner(extractor, saes, config, total=sum(len(n) for n in draws) * calls,
                        done=sum(len(n) for p, n in zip(plans, draws) if p.unit in partial.finished) * calls,
                        progress=progress)
    for plan, numbers in zip(plans, draws):
        if plan.unit not in partial.finished:
            partial.add(plan.unit, cluster_records(plan, concepts[plan.unit], numbers, items, caption, experiments,
                                                   config.batch_size))
    records = partial.records
    name = config.judge["name"]
    apply_judge(judge, name, records, lambda record: items[record["image_number"]].image, judge_progress)
    write_records(root / RECORDS_FILE, records)
    summary = {
        "config": json.loads(config.model_dump_json()),
        "images": images_spec,
        "clusters": [{**asdict(plan), "concept": concepts[plan.unit].model_dump()} for plan in plans],
        "judges": {name: summarise(records, name)},
    }
    write_json(root / SUMMARY_FILE, summary)
    partial.remove()
    return summary
