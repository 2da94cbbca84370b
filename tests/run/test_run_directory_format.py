"""docs/formats.md § Run directory names every file, field and tensor a real run writes, and
model.safetensors has the documented shapes."""

from __future__ import annotations

import json
import re

import pytest
import yaml
from safetensors.torch import load_file

from runkit import ROOT, model_tensors


@pytest.fixture(scope="module")
def section() -> str:
    text = (ROOT / "docs" / "formats.md").read_text()
    start = text.index("\n## Run directory\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def documented(section: str, names) -> list[str]:
    """The names that do not appear in the section as `name` (in backticks)."""
    return sorted({name for name in names if f"`{name}`" not in section})


def generic(name: str) -> str:
    """``levels.2.W_enc`` → ``levels.{l}.W_enc``, ``state.7.exp_avg`` → ``state.{i}.exp_avg``;
    an encoder's own tensor ``levels.2.encoder.x`` → ``x`` (the docs list them per encoder)."""
    if ".encoder." in name:
        return name.rsplit(".", 1)[1]
    name = re.sub(r"^(levels|monitors)\.\d+\.", r"\1.{l}.", name)
    return re.sub(r"^state\.\d+\.", "state.{i}.", name)


def test_every_file_of_a_run_is_documented(finished_run, section):
    assert documented(section, [p.name + ("/" if p.is_dir() else "") for p in finished_run.iterdir()]) == []
    checkpoint = sorted((finished_run / "checkpoints").iterdir())[-1]
    assert re.fullmatch(r"step-\d{8}", checkpoint.name) and "`checkpoints/step-NNNNNNNN/`" in section
    assert documented(section, [p.name for p in checkpoint.iterdir()]) == []


def test_every_field_of_the_json_files_is_documented(finished_run, section):
    config = json.loads((finished_run / "config.json").read_text())
    assert documented(section, config) == []
    recipes = (ROOT / "docs" / "recipes.md").read_text()  # config.json's model section is the recipe's
    assert documented(recipes, config["model"]) == []
    assert documented(recipes, config["model"]["levels"][0]) == []

    metrics = json.loads((finished_run / "metrics.json").read_text())
    assert documented(section, metrics) == []
    for level in metrics["levels"].values():
        assert documented(section, level) == []
    assert documented(section, metrics["levels"]["2"]["hms"]) == []
    assert documented(section, metrics["recovery"]) == []
    assert documented(section, metrics["recovery"]["levels"][0]) == []

    hierarchy = json.loads((finished_run / "hierarchy.json").read_text())
    assert documented(section, hierarchy) == []
    assert documented(section, hierarchy["levels"][0]) == []

    for line in (finished_run / "metrics.jsonl").read_text().splitlines():
        logged = json.loads(line)
        assert documented(section, logged) == []
        for level in logged["levels"].values():
            assert documented(section, level) == []

    state = json.loads(sorted((finished_run / "checkpoints").glob("step-*"))[-1].joinpath("state.json").read_text())
    assert documented(section, state) == []
    assert documented(section, state["optimizer"]) == []
    assert documented(section, state["extra"]) == []
    assert all(group["name"] == f"level{l}" for l, group in enumerate(state["optimizer"]["param_groups"], 1))


def test_every_tensor_is_documented(finished_run, section):
    assert documented(section, map(generic, model_tensors(finished_run))) == []
    checkpoint = sorted((finished_run / "checkpoints").glob("step-*"))[-1]
    model_state = load_file(checkpoint / "model.safetensors")
    assert documented(section, [generic(n) for n in model_state if not n.startswith("levels.")]) == []
    optimizer = {generic(n) for n in load_file(checkpoint / "optimizer.safetensors")}
    assert {n.split(".", 2)[2] for n in optimizer} == {"step", "exp_avg", "exp_avg_sq"}
    assert "`state.{i}.{key}`" in section


def test_model_tensors_have_the_documented_shapes(finished_run):
    tensors = model_tensors(finished_run)
    recipe = yaml.safe_load((finished_run / "recipe.yaml").read_text())
    d = json.loads((finished_run / "config.json").read_text())["n_inputs"]
    for l, level in enumerate(recipe["model"]["levels"], start=1):
        n = level["n_latents"]
        assert tensors[f"levels.{l}.W_enc"].shape == (n, d)
        assert tensors[f"levels.{l}.b_enc"].shape == (n,)
        assert tensors[f"levels.{l}.W_dec"].shape == (d, n)
        assert tensors[f"levels.{l}.b_dec"].shape == (d,)
    assert all(name.startswith("levels.") for name in tensors)
