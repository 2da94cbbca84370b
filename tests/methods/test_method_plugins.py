"""Hierarchy methods are plugins of ``hsae.methods``: the cascade and every baseline come from
entry points, every method's trained model goes through the one run-directory save/load, and a
run directory written in the earlier cascade format still loads."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import save_file

from hsae import registry
from hsae.errors import BadInput
from hsae.interfaces.method import Method
from hsae.methods import build_model, check_method
from hsae.run.run_dir import TRAINING_ONLY, RunDir

FIRST_PARTY = {"cascade", "flat", "p_anneal", "matryoshka", "stacked", "hac", "spectral"}
LEVELS = [{"n_latents": 16, "encoder": {"name": "topk", "k": 2}},
          {"n_latents": 4, "encoder": {"name": "topk", "k": 1}}]


def test_every_first_party_method_is_an_entry_point_of_hsae():
    rows = {row.name: row for row in registry.catalogue() if row.group == "hsae.methods"}
    assert FIRST_PARTY <= set(rows)
    for name in FIRST_PARTY:
        assert rows[name].error is None and rows[name].distribution.split()[0] == "hsae", rows[name]
        assert rows[name].description
        assert issubclass(registry.load("hsae.methods", name), Method)


def _levels(name: str) -> list[dict]:
    if name == "p_anneal":  # the P-annealing penalty needs an encoder with an S term
        return [{**lv, "encoder": {"name": "relu"}, "sparsity_coef": 1e-3} for lv in LEVELS]
    return LEVELS


@pytest.mark.parametrize("name", sorted(FIRST_PARTY))
def test_a_trained_model_of_every_method_saves_and_loads_back(name, model_section, planted_rows, fit, tmp_path):
    section = model_section(name, _levels(name))
    check_method(section, 40)
    model = build_model(16, section, 40)
    fit(model, planted_rows(256), steps=40)
    run = RunDir(tmp_path)
    run.save_model(model, 1.5, section, 40, {"store": "nowhere.h5"})

    loaded, config = run.load_model()
    assert type(loaded) is type(model) and not loaded.training
    assert (config["method"], config["train_steps"], config["scale"]) == (name, 40, 1.5)
    saved = model.state_dict()
    for key, value in loaded.state_dict().items():
        if TRAINING_ONLY.isdisjoint(key.split(".")):
            assert torch.equal(value, saved[key]), key
    rows = lambda: iter([planted_rows(64, seed=3)])  # noqa: E731
    model.eval()
    assert [p.tolist() for p in loaded.parents(rows)] == [p.tolist() for p in model.parents(rows)]


def test_a_run_directory_in_the_earlier_cascade_format_loads(model_section, tmp_path):
    """Written as before this release: only ``levels.*`` tensors, format hsae-cascade, a model
    section without ``method`` and no ``train_steps``."""
    section = model_section("cascade", LEVELS)
    cascade = build_model(16, section, 10)
    tensors = {k: v.contiguous() for k, v in cascade.state_dict().items() if k.startswith("levels.")}
    save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "hsae-cascade", "hsae_version": "0.1.0"})
    legacy = section.model_dump(by_alias=True, exclude={"method"})
    (tmp_path / "config.json").write_text(json.dumps({"hsae_version": "0.1.0", "n_inputs": 16, "scale": 2.0,
                                                      "model": legacy, "store": "s.h5"}))
    loaded, config = RunDir(tmp_path).load_model()
    assert config["scale"] == 2.0
    assert torch.equal(loaded.level(1).W_dec, cascade.level(1).W_dec)
    assert [p.shape for p in loaded.parents()] == [(16,)]


def test_tensors_that_do_not_fit_the_config_are_refused(model_section, tmp_path):
    section = model_section("flat", LEVELS)
    model = build_model(16, section, 10)
    run = RunDir(tmp_path)
    run.save_model(model, 1.0, section, 10)
    config = json.loads(run.config.read_text())
    config["model"]["levels"][0]["n_latents"] = 17
    run.config.write_text(json.dumps(config))
    with pytest.raises(BadInput, match="tensors do not match config.json"):
        run.load_model()


def test_unknown_method_and_bad_options_are_recipe_errors(model_section):
    with pytest.raises(ValueError, match="unknown method 'kmeans'.*cascade"):
        check_method(model_section("flat", LEVELS).model_copy(update={"method": "kmeans"}), 10)
    with pytest.raises(ValueError, match="'hac'.*linkage"):
        check_method(model_section({"name": "hac", "linkage": "ward"}, LEVELS), 10)
    with pytest.raises(ValueError, match="'cascade' takes no options; got \\['depth'\\]"):
        check_method(model_section({"name": "cascade", "depth": 3}, LEVELS), 10)
