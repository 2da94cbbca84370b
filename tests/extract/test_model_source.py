"""A model option names a local folder or a hub id; a local folder that does not exist is refused
by ``hsae validate`` and at the start of ``hsae run``, before anything is loaded or looked up;
``tiny_if_missing`` builds the family's tiny model into a missing folder (the image quickstart)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import yaml

from hsae import registry
from hsae.interfaces.model_source import is_local, model_source_problem

sys.path.insert(0, str(Path(__file__).parents[1] / "run"))
from runkit import ROOT, run_cli  # noqa: E402

QUICKSTART = ROOT / "recipes" / "quickstart_images.yaml"


@pytest.mark.parametrize("value, local", [
    ("Qwen/Qwen3-VL-4B-Instruct", False), ("gpt2", False), ("facebook/dinov2-base", False),
    ("./models/tiny", True), ("/abs/model", True), ("~/model", True), ("a/b/c", True), ("bad--name/x", True),
])
def test_local_folders_and_hub_ids(value, local):
    assert is_local(value) == local


def test_a_relative_path_under_an_existing_folder_is_local(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    assert is_local("models/tiny-qwen3-vl")
    assert "does not exist" in model_source_problem("models/tiny-qwen3-vl")


def _never_loaded(monkeypatch):
    import transformers

    def refuse(*args, **kwargs):
        raise AssertionError("from_pretrained was called for a model that should have been refused")

    for name in ("AutoModelForImageTextToText", "AutoProcessor", "AutoModel", "AutoImageProcessor"):
        monkeypatch.setattr(getattr(transformers, name), "from_pretrained", refuse)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_a_missing_model_folder_fails_at_once(tmp_path, monkeypatch, command):
    _never_loaded(monkeypatch)
    monkeypatch.chdir(tmp_path)
    args = [command, QUICKSTART, "--set", "extract.extractor.tiny_if_missing=false"]
    result = run_cli(*args, *(["--out", tmp_path / "out"] if command == "run" else []))
    assert result.code == 2, result.output
    assert "model folder './models/tiny-qwen3-vl' does not exist" in result.flat
    assert "never looked up on the hub" in result.flat and "Traceback" not in result.output
    assert not (tmp_path / "out").exists() and not (tmp_path / "models").exists()


def test_a_missing_backbone_model_folder_fails_in_validate(tmp_path, monkeypatch):
    _never_loaded(monkeypatch)
    result = run_cli("validate", QUICKSTART, "--set", f"eval.backbone={{name: hf_vision, model: {tmp_path / 'dino'}}}")
    assert result.code == 2 and "eval.backbone" in result.flat and "does not exist" in result.flat, result.output


def test_the_image_quickstart_validates_before_its_model_is_built(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert yaml.safe_load(QUICKSTART.read_text())["extract"]["extractor"]["tiny_if_missing"] is True
    result = run_cli("validate", QUICKSTART)
    assert result.code == 0, result.output
    assert not (tmp_path / "models").exists()


def test_tiny_if_missing_builds_the_model_once(tmp_path):
    folder = tmp_path / "models" / "tiny"
    spec = {"name": "qwen3_vl", "model": str(folder), "tiny_if_missing": True, "layer": "visual.blocks.1", "device": "cpu"}
    extractor = registry.create("hsae.extractors", spec)
    extractor.load()
    assert (folder / "config.json").is_file() and extractor.width > 0
    assert not folder.with_name("tiny.building").exists()
    marker = folder / "kept.txt"
    marker.write_text("a model folder that exists is used as it is")
    registry.create("hsae.extractors", spec).load()
    assert marker.exists()


@pytest.mark.slow
def test_the_image_quickstart_runs_on_a_fresh_folder(tmp_path, monkeypatch):
    """No model built beforehand: the run builds it into ./models/tiny-qwen3-vl, then extracts,
    trains and evaluates (sizes shrunk)."""
    monkeypatch.chdir(tmp_path)
    shrink = {"extract.dataset.n_images": 24, "train.steps": 30, "train.batch_size": 64,
              "train.warmup_steps": 2, "model.levels.1.start_step": 10}
    sets = [arg for key, value in shrink.items() for arg in ("--set", f"{key}={value}")]
    result = run_cli("run", QUICKSTART, "--out", tmp_path / "out", *sets)
    assert result.code == 0, result.output
    assert (tmp_path / "models" / "tiny-qwen3-vl" / "config.json").is_file()
    assert (tmp_path / "out" / "metrics.json").is_file()
