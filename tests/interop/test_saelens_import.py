"""A SAELens folder as a frozen level 1 (``model.levels[0].from``): its weights come out of
training bit for bit, and the levels above train on its atoms."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from interopkit import train_tiny
from hsae.cli.app import app
from hsae.errors import BadInput
from hsae.interop.export import export_run
from hsae.interop.saelens import read_saelens
from hsae.recipe.load import parse_recipe

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"


def level1_tensors(run: Path) -> dict[str, torch.Tensor]:
    return {k: v for k, v in load_file(run / "model.safetensors").items() if k.startswith("levels.1.")}


def test_imported_level_is_bit_identical_after_training(tiny_runs, tmp_path):
    folder = export_run(tiny_runs["cascade"], tmp_path / "export")[0]
    run = train_tiny(tmp_path / "on-top", {"levels": [
        {"from": {"format": "saelens", "path": str(folder)}},
        {"n_latents": 8, "encoder": {"name": "topk", "k": 1}}]})
    source = read_saelens(folder)
    trained = level1_tensors(run)
    for key, value in source.state.items():
        assert torch.equal(trained[f"levels.1.{key}"], value), key
    config = json.loads((run / "config.json").read_text())
    assert config["scale"] == 1.0
    assert config["model"]["levels"][0]["encoder"] == {"name": "topk", "k": 3}
    assert config["model"]["levels"][0]["n_latents"] == 32
    # exported again, the level is the source folder's SAE bit for bit
    again = export_run(run, tmp_path / "again")[0]
    assert {k: v for k, v in load_file(again / "sae_weights.safetensors").items()}.keys() == \
        load_file(folder / "sae_weights.safetensors").keys()
    for key, value in load_file(folder / "sae_weights.safetensors").items():
        assert torch.equal(load_file(again / "sae_weights.safetensors")[key], value), key


def test_a_missing_or_broken_folder_is_bad_input(tmp_path):
    tree = {"data": {"dataset": {"name": "synthetic_hierarchy"}},
            "model": {"levels": [{"from": {"path": str(tmp_path / "nope")}}, {"n_latents": 4, "encoder": {"name": "topk"}}]}}
    with pytest.raises(BadInput, match="no such SAELens folder"):
        parse_recipe(tree)
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cfg.json").write_text('{"d_in": 4, "d_sae": 8, "architecture": "matching_pursuit"}')
    (tmp_path / "bad" / "sae_weights.safetensors").write_bytes(b"")
    tree["model"]["levels"][0]["from"]["path"] = str(tmp_path / "bad")
    with pytest.raises(BadInput, match="architecture 'matching_pursuit' is not read"):
        parse_recipe(tree)
    tree["model"]["levels"] = [{"n_latents": 4, "encoder": {"name": "topk"}},
                               {"n_latents": 8, "encoder": {"name": "topk"}, "from": {"path": str(tmp_path / "bad")}}]
    with pytest.raises(BadInput, match="only level 1"):
        parse_recipe(tree)


@pytest.mark.slow
def test_a_hierarchy_over_a_differently_seeded_level_1_recovers_the_planted_parents(tmp_path):
    """The quickstart's store: level 1 of a run with another training seed, exported and used
    frozen under a fresh level 2, which recovers the planted parents (F1 ≥ 0.9)."""
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(QUICKSTART), "--set", "train.seed=7", "--out", str(tmp_path / "donor")],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["export", str(tmp_path / "donor"), str(tmp_path / "saelens")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "saelens" / "level-1"
    result = runner.invoke(app, ["run", str(QUICKSTART), "--set", f"model.levels.0={{from: {{path: {folder}}}}}",
                                 "--out", str(tmp_path / "on-top")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    source = read_saelens(folder)
    trained = level1_tensors(tmp_path / "on-top")
    assert all(torch.equal(trained[f"levels.1.{key}"], value) for key, value in source.state.items())
    recovery = json.loads((tmp_path / "on-top" / "metrics.json").read_text())["recovery"]
    assert recovery["levels"][0]["f1"] >= 0.9, recovery["levels"][0]
