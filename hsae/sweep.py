"""What ``hsae run`` does with a recipe that lists ``variants:``: every variant trained and
evaluated into ``<out>/<variant>/`` on shared activations.

Variants with the same activation source read one store, made once in ``<out>/stores/<k>/``
(k = 1, 2, … in the order the sources first appear) unless the source is a store of the
user's (``data.activations``). ``<out>/sweep.json`` lists the variants in recipe order, for
``hsae compare``. Every variant resumes like a single run.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from hsae.compare import SWEEP_FILE
from hsae.errors import BadInput
from hsae.pipeline import Hooks, check_run_dir, prepare_store, train_and_evaluate
from hsae.recipe.schema import SWEEP_STORES
from hsae.recipe.variants import VariantRecipe
from hsae.run_dir import RunDir, write_json
from hsae.store import ActivationStore


def run_sweep(variants: list[VariantRecipe], out: Path, hooks: Hooks, fresh: bool = False) -> list[RunDir]:
    """Train and evaluate every variant; returns their run directories in recipe order."""
    if not variants:
        raise BadInput("the recipe lists no variants")
    if fresh and out.exists():
        shutil.rmtree(out)
    runs = [RunDir(out / v.name) for v in variants]
    for variant, run in zip(variants, runs):  # refuse before anything is trained
        check_run_dir(run, variant.tree, fresh=False)
    out.mkdir(parents=True, exist_ok=True)
    write_json(out / SWEEP_FILE, {"variants": [{"name": v.name, "label": v.label} for v in variants]})
    sources: list[str] = []
    stores: dict[str, ActivationStore] = {}
    for i, (variant, run) in enumerate(zip(variants, runs), start=1):
        hooks.message(f"variant {i}/{len(variants)}: {variant.name}")
        run.write_recipe(variant.tree)
        key = variant.source_key
        if key not in stores:
            sources.append(key)
            holder = RunDir(out / SWEEP_STORES / str(len(sources)))
            holder.root.mkdir(parents=True, exist_ok=True)
            stores[key] = prepare_store(variant.recipe, holder, hooks)
        elif variant.recipe.data.width is not None:
            stores[key].check_width(variant.recipe.data.width)
        train_and_evaluate(variant.recipe, run, stores[key], hooks, {"variant": variant.name, "label": variant.label})
    return runs
