"""``hsae validate``, ``hsae plugins`` and ``--set`` overrides reaching the run directory."""

from __future__ import annotations

import json

import yaml

from hsae import registry

from runkit import ROOT, run_cli, small_recipe, write_recipe

ENCODERS = ("batchtopk", "gated", "jumprelu", "relu", "topk")


def test_validate_accepts_the_quickstart_recipe(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = run_cli("validate", ROOT / "recipes" / "quickstart.yaml")
    assert result.code == 0, result.output
    assert result.output.startswith("ok ")
    assert list(tmp_path.iterdir()) == []  # validating runs nothing and writes nothing


def test_validate_applies_overrides(tmp_path):
    result = run_cli("validate", ROOT / "recipes" / "quickstart.yaml", "--set", "train.steps=0")
    assert result.code == 2
    assert "train.steps" in result.flat and "greater than 0" in result.flat and "(got 0)" in result.flat


def test_plugins_lists_the_five_encoders():
    result = run_cli("plugins")
    assert result.code == 0, result.output
    section = result.output[result.output.index("hsae.encoders"):result.output.index("hsae.extractors")]
    listed = sorted(line.split("│")[1].strip() for line in section.splitlines()
                    if line.count("│") >= 3 and line.split("│")[1].strip() not in ("", "name"))
    assert listed == sorted(ENCODERS) == registry.names("hsae.encoders")
    for group in registry.GROUPS:
        assert group in result.output


def test_overrides_reach_the_saved_recipe_and_the_model(tmp_path):
    recipe = write_recipe(tmp_path / "small.yaml", small_recipe(train={"steps": 30}))
    out = tmp_path / "run"
    result = run_cli("run", recipe, "--out", out,
                     "--set", "train.steps=25",                   # a scalar
                     "--set", "model.levels.0.encoder.k=2",       # nested, through a list item
                     "--set", "model.levels.1.n_latents=8",       # a list item by index
                     "--set", "data.dataset.n_samples=3000",      # nested inside a plugin spec
                     "--set", "train.lr=3.0e-4",
                     "--set", "model.levels.1.lr=5.0e-4")
    assert result.code == 0, result.output

    saved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert saved["train"]["steps"] == 25 and saved["train"]["lr"] == 3.0e-4
    assert saved["model"]["levels"][0]["encoder"] == {"name": "topk", "k": 2}
    assert saved["model"]["levels"][1]["n_latents"] == 8 and saved["model"]["levels"][1]["lr"] == 5.0e-4
    assert saved["data"]["dataset"]["n_samples"] == 3000
    assert yaml.safe_load(recipe.read_text())["train"]["steps"] == 30  # the recipe file is untouched

    levels = json.loads((out / "config.json").read_text())["model"]["levels"]
    assert levels[0]["encoder"]["k"] == 2 and levels[1]["n_latents"] == 8
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["levels"]["1"]["rows"] == 3000 and metrics["levels"]["2"]["n_latents"] == 8
    assert metrics["levels"]["1"]["l0"] <= 2
    steps = [json.loads(line)["step"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert steps[-1] == 24


def test_a_wrong_command_line_exits_2_with_the_usage(tmp_path):
    recipe = write_recipe(tmp_path / "small.yaml", small_recipe())
    for args, problem in ((["run"], "Missing argument"), (["run", recipe, "--bogus"], "No such option"),
                          (["frobnicate"], "No such command")):
        result = run_cli(*args)
        assert result.code == 2, result.output
        assert "Usage:" in result.output and problem in result.output and "Traceback" not in result.output
    assert not (tmp_path / "runs").exists()
