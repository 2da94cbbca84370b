"""What ``hsae run`` does with a recipe that lists ``variants:``: every variant trained and
evaluated into ``<out>/<variant>/`` on shared activations.

Variants with the same activation source read one store, made once in ``<out>/stores/<k>/``
(k = 1, 2, … in the order the sources first appear) unless the source is a store of the
user's (``data.activations``). Variants on one store with the same batch stream
(``hsae.train.trainer.batch_stream``) and ``train.shared_pass`` are trained together, each
batch read once. ``<out>/sweep.json`` lists the variants in recipe order, for ``hsae compare``.
Every variant resumes like a single run.
"""

from __future__ import annotations

from pathlib import Path

from hsae.run.compare import SWEEP_FILE
from hsae.errors import BadInput
from hsae.run import lock as run_lock
from hsae.run.pipeline import (Hooks, check_run_dir, prepare_store, prepare_test_store, report_training,
                               save_and_evaluate, trainer_for)
from hsae.recipe.schema import SWEEP_STORES
from hsae.run.variants import VariantRecipe
from hsae.run.run_dir import RunDir, write_json
from hsae.store import ActivationStore
from hsae.train.trainer import batch_stream, fit_together, scales_activations


def shared_pass_groups(variants: list[VariantRecipe]) -> list[list[int]]:
    """Indices of the variants trained together, groups ordered by their first variant: those
    with ``train.shared_pass``, one activation source and one batch stream form a group; any
    other variant is a group of its own."""
    groups: dict[object, list[int]] = {}
    for i, variant in enumerate(variants):
        recipe = variant.recipe
        stream = batch_stream(recipe.train, scales_activations(recipe.model, recipe.data.normalize))
        key = (variant.source_key, stream) if recipe.train.shared_pass else i
        groups.setdefault(key, []).append(i)
    return list(groups.values())


def run_sweep(variants: list[VariantRecipe], out: Path, hooks: Hooks, fresh: bool = False,
              force: bool = False) -> list[RunDir]:
    """Train and evaluate every variant; returns their run directories in recipe order. The
    sweep's folder is held by this run (``hsae.run.lock``) throughout."""
    if not variants:
        raise BadInput("the recipe lists no variants")
    with run_lock.holding(out):
        if fresh:
            run_lock.clear(out)
        return _run_variants(variants, out, hooks, force)


def _run_variants(variants: list[VariantRecipe], out: Path, hooks: Hooks, force: bool) -> list[RunDir]:
    runs = [RunDir(out / v.name) for v in variants]
    for variant, run in zip(variants, runs):  # refuse before anything is trained
        check_run_dir(run, variant.tree, force=force)
    write_json(out / SWEEP_FILE, {"variants": [{"name": v.name, "label": v.label} for v in variants]})
    stores: dict[str, tuple[ActivationStore, ActivationStore | None]] = {}
    for group in shared_pass_groups(variants):
        members = [variants[i] for i in group]
        numbers = ", ".join(str(i + 1) for i in group)
        names = ", ".join(v.name for v in members)
        hooks.message(f"variant {numbers}/{len(variants)}: {names}" if len(group) == 1 else
                      f"variants {numbers}/{len(variants)}: training {names} together (one pass over the store)")
        for i in group:
            runs[i].write_recipe(variants[i].tree)
        for variant in members:  # one source per group; each variant's data.width is checked
            store, test_store = _store_of(variant, stores, out, hooks)
        callback = hooks.train_progress(members[0].recipe.train.steps) if hooks.train_progress else None
        trainers = [trainer_for(variants[i].recipe, runs[i], store) for i in group]
        hooks.message(f"training on {trainers[0].cfg.device}")
        results = fit_together(trainers, callback)
        for i, result in zip(group, results):
            variant = variants[i]
            report_training(result, hooks, variant.name)
            save_and_evaluate(variant.recipe, runs[i], store, result, {"variant": variant.name, "label": variant.label},
                              test_store)
    return runs


def _store_of(variant: VariantRecipe, stores: dict[str, tuple[ActivationStore, ActivationStore | None]], out: Path,
              hooks: Hooks) -> tuple[ActivationStore, ActivationStore | None]:
    """The training and test stores of the variant's activation source, made at its first use in
    ``<out>/stores/<k>/`` (no test store: None)."""
    key = variant.source_key
    if key not in stores:
        holder = RunDir(out / SWEEP_STORES / str(len(stores) + 1))
        holder.root.mkdir(parents=True, exist_ok=True)
        store = prepare_store(variant.recipe, holder, hooks)
        stores[key] = store, prepare_test_store(variant.recipe, holder, store)
    elif variant.recipe.data.width is not None:
        stores[key][0].check_width(variant.recipe.data.width)
    return stores[key]
