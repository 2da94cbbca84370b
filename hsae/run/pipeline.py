"""What ``hsae run`` does, stage by stage: activations → training → evaluation → files.

In a data-parallel run (docs/distributed.md) every process takes part in making the store and
in training; the first one alone writes the run directory's files and evaluates."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from hsae import registry
from hsae.errors import BadInput
from hsae.extract.embeddings import store_embeddings
from hsae.interfaces.dataset import ActivationSource, Progress
from hsae.methods import build_model
from hsae.recipe.difference import recipe_difference
from hsae.recipe.load import parse_recipe
from hsae.recipe.schema import Recipe
from hsae.run import lock as run_lock
from hsae.run.evaluation import evaluate
from hsae.run.run_dir import RunDir, reading, write_json
from hsae.store import ActivationStore
from hsae.store.layout import parts_folder
from hsae import distributed
from hsae.train.checkpoint import latest_checkpoint
from hsae.train.trainer import StepCallback, Trainer, TrainResult


@dataclass
class Hooks:
    """Progress reporting the CLI plugs in (all optional)."""

    store_progress: Progress | None = None  # a dataset plugin writing the store
    train_progress: Callable[[int], StepCallback] | None = None  # called with the total steps
    message: Callable[[str], None] = lambda text: None


def prepare_store(recipe: Recipe, run: RunDir, hooks: Hooks) -> ActivationStore:
    """Open the user's store, or have the dataset plugin / extraction stage write one."""
    if recipe.data.activations is not None:
        store = ActivationStore(recipe.data.activations)
    else:
        if recipe.data.dataset is not None:
            source = registry.create("hsae.datasets", recipe.data.dataset)
            if not isinstance(source, ActivationSource):
                raise BadInput(f"data.dataset: {recipe.data.dataset['name']!r} is an image dataset; "
                               "image datasets go in the extract section with an extractor")
            if distributed.is_main():
                source.write_store(run.store, hooks.store_progress)
            distributed.barrier()  # the others open the store once it is written
        else:
            from hsae.extract import run_extraction  # the optional image-model stage

            run_extraction(recipe.extract, run.store)  # shows its own bar: images/s and tokens/s
        store = ActivationStore(run.store)
    if recipe.data.width is not None:
        store.check_width(recipe.data.width)
    return store


def prepare_test_store(recipe: Recipe, run: RunDir, store: ActivationStore) -> ActivationStore | None:
    """The test store evaluation reads, or None (evaluation reads the training store): the user's
    ``data.test_activations``, or the extraction stage's test draw (``extract.test_dataset``),
    written beside the training store. Its width must be the training store's."""
    if recipe.data.test_activations is not None:
        test = ActivationStore(recipe.data.test_activations)
    elif recipe.extract is not None and recipe.extract.get("test_dataset"):
        from hsae.extract import run_extraction
        from hsae.extract.config import held_out_section

        run_extraction(held_out_section(recipe.extract), run.test_store)
        test = ActivationStore(run.test_store)
    else:
        return None
    if test.width != store.width:
        raise BadInput(f"the test store {test.path} has width {test.width}, the training store {store.path} "
                       f"width {store.width}; both must come from the same model and layer")
    return test


def image_embeddings(recipe: Recipe, store: ActivationStore, run: RunDir) -> np.ndarray | None:
    """Fixed-backbone embeddings of the store's images (row = image id), or None (no HMS)."""
    if recipe.eval.backbone is None:
        return None
    backbone = registry.create("hsae.backbones", recipe.eval.backbone)
    return store_embeddings(backbone, store, run.root)


def check_run_dir(run: RunDir, tree: dict, fresh: bool = False, force: bool = False) -> None:
    """Refuse to mix two recipes in one run directory, listing what differs; ``force`` resumes
    with the new recipe anyway, ``fresh`` empties the (held) folder and starts over."""
    if fresh and run.root.exists() and distributed.is_main():
        run_lock.clear(run.root)
    distributed.barrier()  # no process looks into the folder while the first one empties it
    saved = run.read_recipe_tree()
    made = latest_checkpoint(run.checkpoints) is not None or run.store.exists() or parts_folder(run.store).exists()
    if saved is not None and saved != tree and made and not force:
        changes = "\n".join(f"  {line}" for line in recipe_difference(saved, tree))
        raise BadInput(f"{run.root} holds a run of a different recipe:\n{changes}\nresume it with the same "
                       "recipe, pass --force to go on with this one, --fresh to start over, or choose another --out")


def run_recipe(recipe: Recipe, tree: dict, run: RunDir, hooks: Hooks, fresh: bool = False,
               force: bool = False) -> dict | None:
    """Train and evaluate; returns metrics.json's content (None on the other processes of a
    data-parallel run). Resumes from the last checkpoint. The run directory is held by this run
    (``hsae.run.lock``; by the first process of a data-parallel run) throughout."""
    with run_lock.holding(run.root) if distributed.is_main() else contextlib.nullcontext():
        distributed.barrier()  # the others start once the first holds the folder
        check_run_dir(run, tree, fresh, force)
        if distributed.is_main():
            run.write_recipe(tree)
        store = prepare_store(recipe, run, hooks)
        return train_and_evaluate(recipe, run, store, hooks, prepare_test_store(recipe, run, store))


def trainer_for(recipe: Recipe, run: RunDir, store: ActivationStore) -> Trainer:
    """The trainer of the recipe's model (cascade or baseline) on ``store``, writing into ``run``."""
    return Trainer(recipe.model, recipe.train, store, run, recipe.data.normalize,
                   build=lambda width: build_model(width, recipe.model, recipe.train.steps))


def train_and_evaluate(recipe: Recipe, run: RunDir, store: ActivationStore, hooks: Hooks,
                       test_store: ActivationStore | None = None) -> dict | None:
    """Train the recipe's model on ``store``, save and evaluate it (on ``test_store`` when there is
    one); returns metrics.json's content (None on the other processes of a data-parallel run,
    which only train)."""
    callback = hooks.train_progress(recipe.train.steps) if hooks.train_progress else None
    trainer = trainer_for(recipe, run, store)
    hooks.message(f"training on {trainer.cfg.device}")
    result = trainer.fit(callback)
    if not distributed.is_main():
        return None
    report_training(result, hooks)
    return save_and_evaluate(recipe, run, store, result, test_store=test_store)


def report_training(result: TrainResult, hooks: Hooks, name: str | None = None) -> None:
    """The checkpoint training resumed from and its notes (checkpoints passed over, batches skipped)."""
    prefix = f"{name}: " if name else ""
    for note in result.notes:
        hooks.message(prefix + note)
    if result.resumed_from is not None:
        hooks.message(f"{prefix}resumed from the checkpoint at step {result.resumed_from}")


def save_and_evaluate(recipe: Recipe, run: RunDir, store: ActivationStore, result: TrainResult,
                      extra: dict | None = None, test_store: ActivationStore | None = None) -> dict:
    """Save a trained model with ``extra`` in config.json (with the stores and the training
    device) and evaluate it; returns metrics.json's content."""
    run.save_model(result.cascade, result.scale, recipe.model, recipe.train.steps,
                   {"store": str(store.path.resolve()),
                    "test_store": None if test_store is None else str(test_store.path.resolve()),
                    "device": result.device, **(extra or {})})
    return evaluate_run(run, recipe, test_store or store)


def evaluate_run(run: RunDir, recipe: Recipe | None = None, store: ActivationStore | None = None) -> dict:
    """(Re)compute metrics.json and hierarchy.json of a finished run, on its test store when it
    has one (``split`` in metrics.json says which)."""
    with reading(run.root):
        cascade, config = run.load_model()
        scale, store_path = float(config["scale"]), Path(config.get("test_store") or config["store"])
    if recipe is None:
        recipe = parse_recipe(run.read_recipe_tree() or {}, str(run.recipe))
    if store is None:
        store = ActivationStore(store_path)
    metrics, hierarchy = evaluate(cascade, store, scale, recipe.eval, image_embeddings(recipe, store, run))
    metrics["recipe"] = recipe.name
    metrics["split"] = "test" if config.get("test_store") else "train"
    write_json(run.metrics, metrics)
    write_json(run.hierarchy, hierarchy)
    return metrics


def load_metrics(run: RunDir) -> dict:
    if not run.metrics.exists():
        raise BadInput(f"{run.root}: no metrics.json; run `hsae eval {run.root}` first")
    with reading(run.root):
        return json.loads(run.metrics.read_text())
