"""A steering run (spec §8): captions per (cluster, image, arm) with the clamp written back,
judged, written to ``steering.jsonl``, summarised in ``steering.json``.

For each cluster, ``images_per_cluster`` held-out images get a baseline caption (no hook)
and one caption per arm with the arm's atoms clamped to ``c = α μ_C`` (insertion) and, with
``suppression``, to 0. The same baseline caption stands in both experiments. The judge
answers per row; suppression is scored on the rows whose baseline expresses the concept.
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
from hsae.intervene.run_model import RunModel
from hsae.intervene.write_back import Splice, spliced
from hsae.run_dir import write_json
from hsae.steer.config import Concept, SteerConfig
from hsae.intervene.held_out import draw, held_out_numbers, image_dataset, images_at
from hsae.steer.judging import apply_judge, make_judge, write_records
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


def run_steering(root: Path, config: SteerConfig, progress: Progress | None = None,
                 judge_progress: Progress | None = None) -> dict:
    """Generate, judge and write the steering run of the finished run at ``root``; returns the summary."""
    root = Path(root)
    rm = RunModel.open(root)
    judge = make_judge(config.judge)  # a bad judge spec fails before anything is generated
    hierarchy = Hierarchy.read(rm.run.hierarchy)
    matched = None
    if config.matched_run is not None:
        other = RunModel.open(config.matched_run)
        if other.sae.sae.n_inputs != rm.sae.sae.n_inputs:
            raise BadInput(f"steer.matched_run: {config.matched_run} reads rows of width {other.sae.sae.n_inputs}, "
                           f"this run {rm.sae.sae.n_inputs}; the matched run must be trained on the same layer")
        matched = (other.sae, other.scale)
    with rm.store() as store:
        plans = plan_clusters(store, hierarchy, rm.sae, rm.scale, config, matched)
        training = set(image_names(store)) if config.exclude_training else set()
    concepts = concepts_of(plans, config, root)
    images_spec = config.images or rm.dataset_spec()
    dataset = image_dataset(images_spec, "steer.images")
    draws = draw(held_out_numbers(dataset, training), len(plans), config.images_per_cluster,
                             config.seed, "steer.images")
    items = images_at(dataset, {n for numbers in draws for n in numbers})
    extractor = rm.extractor(config.extractor)
    module = extractor.target_module
    device = next(module.parameters()).device
    saes = {"run": (rm.sae.sae.to(device), rm.scale)}
    if matched is not None:
        saes["matched"] = (matched[0].sae.to(device), matched[1])
    experiments = [("insertion", 1.0)] + ([("suppression", 0.0)] if config.suppression else [])
    total = sum(len(n) for n in draws) * (1 + len(experiments) * len(plans[0].arms))
    done, records = 0, []

    def caption(images, arm: Arm | None, factor: float) -> list[str]:
        nonlocal done
        splice = None
        if arm is not None:
            sae, scale = saes[arm.which]
            splice = Splice(sae, scale, config.write_back, config.code, clamp_edit(arm.latents, arm.clamp * factor))
        with spliced(module, splice):
            out = extractor.generate(images, config.prompt, config.max_new_tokens)
        done += len(images)
        if progress is not None:
            progress(done, total)
        return out

    for plan, numbers in zip(plans, draws):
        concept = concepts[plan.unit]
        for batch in _batches(numbers, config.batch_size):
            images = [items[n].image for n in batch]
            base = {"cluster": plan.unit, "concept": concept.name, "keywords": concept.keywords}
            captions = {("baseline", None): caption(images, None, 0.0)}
            for experiment, factor in experiments:
                for arm in plan.arms:
                    captions[(arm.name, experiment)] = caption(images, arm, factor)
            for experiment, factor in experiments:
                for arm in [None, *plan.arms]:
                    texts = captions[("baseline", None)] if arm is None else captions[(arm.name, experiment)]
                    for n, text in zip(batch, texts):
                        records.append({
                            **base, "experiment": experiment, "image": items[n].image_id, "image_number": n,
                            "arm": "baseline" if arm is None else arm.name,
                            "sae": None if arm is None else arm.which,
                            "clamp": 0.0 if arm is None else arm.clamp * factor,
                            "latents": [] if arm is None else arm.latents, "caption": text})
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
    return summary
