"""The paper's recipes (recipes/paper/) and the CPU reproduction validate; one runs end to end
on a tiny offline model and a small image folder."""

from __future__ import annotations

import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image

from sweepkit import ROOT, hsae
from hsae.recipe.load import read_recipe_tree
from hsae.run.variants import expand_variants
from hsae.store import ActivationStore

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PAPER = sorted((ROOT / "recipes" / "paper").glob("*-table?.yaml"))
STEERING = [ROOT / "recipes" / "paper" / "steering_qwen3vl_coco.yaml", ROOT / "recipes" / "steering_demo.yaml"]
TABLE1 = ["BatchTopK", "TopK", "ReLU", "P-Anneal", "Gated", "JumpReLU", "Matryoshka", "Stacked", "CSAE"]
TABLE4 = ["Partial SG", "Bilateral SG", "Stacked", "HAC", "SC", "CSAE (Full)"]


def test_there_is_a_table1_and_a_table4_recipe_per_model_and_dataset():
    names = {p.stem for p in PAPER}
    assert names == {f"{m}-{d}-{t}" for m in ("qwen3vl", "gemma3", "llava")
                     for d in ("color", "imagenet", "coco", "inaturalist") for t in ("table1", "table4")}


@pytest.mark.parametrize("recipe", [*PAPER, *STEERING, ROOT / "recipes" / "reproduce_synthetic.yaml"], ids=lambda p: p.stem)
def test_the_recipe_validates(recipe):
    code, output = hsae("validate", recipe)
    assert code == 0, output
    assert "device: training on " in output, output


@pytest.mark.parametrize("recipe", PAPER, ids=lambda p: p.stem)
def test_a_paper_recipe_has_the_columns_of_its_table(recipe):
    labels = [v.label for v in expand_variants(read_recipe_tree(recipe), [], str(recipe))]
    assert labels == (TABLE1 if recipe.stem.endswith("table1") else TABLE4)


def test_a_paper_recipe_shows_the_devices_it_will_use():
    code, output = hsae("validate", ROOT / "recipes" / "paper" / "qwen3vl-color-table1.yaml")
    where = "cuda" if torch.cuda.is_available() else "cpu"
    assert code == 0 and f"training on {where} (train.device: auto)" in output, output
    assert f"extraction on {where}" in output, output


def test_a_paper_recipe_runs_end_to_end_on_a_tiny_model_and_an_image_folder(tmp_path):
    """Extraction writes a training store and, from the 8:2 split of every class folder, a test
    store beside it; every method's HMS and figures are computed on the test store."""
    from hsae_plugins.extractors import tiny_models

    model = tiny_models.build("qwen3_vl", tmp_path / "tiny")
    rng = np.random.default_rng(0)
    for name, colour in (("red", (200, 30, 30)), ("blue", (30, 30, 200))):
        folder = tmp_path / "color" / name
        folder.mkdir(parents=True)
        for i in range(10):
            noise = rng.integers(-20, 20, (64, 64, 3))
            Image.fromarray((np.array(colour) + noise).clip(0, 255).astype("uint8")).save(folder / f"{i}.png")
    shrink = {
        "extract.extractor.model": model, "extract.extractor.layer": "visual.blocks.1",
        "extract.extractor.device": "cpu", "extract.dataset.root": tmp_path / "color",
        "model.levels.0.n_latents": 16, "model.levels.1.n_latents": 8, "model.levels.1.start_step": 5,
        "train.steps": 40, "train.batch_size": 32, "train.warmup_steps": 2, "train.checkpoint_every": 40,
        "train.threads": 1, "eval.backbone": "{name: pixel_stats}",
    }
    sets = [arg for key, value in shrink.items() for arg in ("--set", f"{key}={value}")]
    out = tmp_path / "out"
    code, output = hsae("run", ROOT / "recipes" / "paper" / "qwen3vl-color-table1.yaml", "--out", out, *sets)
    assert code == 0, output
    with open(out / "compare.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [c for c in rows[0] if c not in ("data", "metric")] == TABLE1
    hms_mean = next(r for r in rows if r["metric"] == "HMS mean")
    assert all(hms_mean[label] != "" for label in TABLE1)
    train, test = ActivationStore(out / "stores" / "1" / "activations.h5"), ActivationStore(out / "stores" / "1" / "test_activations.h5")
    assert (train.n_images, test.n_images) == (16, 4)  # 8 + 8 train images, 2 + 2 test images
    for variant in ("csae", "batchtopk", "matryoshka"):
        metrics = json.loads((out / variant / "metrics.json").read_text())
        config = json.loads((out / variant / "config.json").read_text())
        assert metrics["split"] == "test" and config["test_store"] == str(test.path.resolve())
        assert metrics["levels"]["1"]["rows"] == test.n_rows and metrics["levels"]["2"]["hms"]["n_parents"] >= 0
        assert config["device"] == ("cuda" if torch.cuda.is_available() else "cpu")
