"""Sweep variants trained together in one pass over the store (``train.shared_pass``): each
batch is read once, and every variant ends bit-identical to the same variant trained alone,
also after a kill part-way through the pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

import hsae.train.trainer as trainer_module
from hsae.cascade.cascade import Cascade
from hsae.cascade.config import CascadeConfig
from hsae.run.pipeline import Hooks
from hsae.recipe.schema import TrainConfig
from hsae.run.variants import expand_variants
from hsae.run.run_dir import RunDir
from hsae.store import ActivationStore, StoreWriter
from hsae.run.sweep import run_sweep, shared_pass_groups
from hsae.train.trainer import Trainer, fit_together

STEPS = 60
LEVELS = [{"n_latents": 24, "encoder": {"name": "topk", "k": 2}},
          {"n_latents": 6, "encoder": {"name": "topk", "k": 1}, "start_step": 20}]
RECIPE = {
    "name": "shared",
    "data": {"dataset": {"name": "synthetic_hierarchy", "n_samples": 1500, "width": 16, "seed": 3}},
    "model": {"levels": LEVELS},
    "train": {"steps": STEPS, "batch_size": 64, "warmup_steps": 5, "checkpoint_every": 20, "log_every": 5,
              "threads": 1},
    "variants": [  # three methods, each with its own learning-rate schedule
        {"name": "csae"},
        {"name": "topk", "set": {"model.method": "flat", "train.lr": 3e-3}},
        {"name": "matryoshka", "set": {"model.method": "matryoshka", "train.warmup_steps": 20,
                                       "model.levels.0.encoder": {"name": "batchtopk", "k": 2}}},
    ],
}
NAMES = [v["name"] for v in RECIPE["variants"]]


class Stop(Exception):
    pass


class Reads:
    """Counts the batch streams opened on stores, the batches read and the global scales estimated."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch):
        self.streams = self.batches = self.scales = 0
        batches, scale = ActivationStore.batches, trainer_module.global_scale

        def counted_batches(store, *args, **kwargs):
            self.streams += 1
            for batch in batches(store, *args, **kwargs):
                self.batches += 1
                yield batch

        def counted_scale(store, normalize=True):
            self.scales += 1
            return scale(store, normalize)

        monkeypatch.setattr(ActivationStore, "batches", counted_batches)
        monkeypatch.setattr(trainer_module, "global_scale", counted_scale)


def variants(tree: dict = RECIPE, overrides: tuple[str, ...] = ()):
    return expand_variants(tree, list(overrides), "shared.yaml")


def sweep(out: Path, *overrides: str, tree: dict = RECIPE, train_progress=None, messages: list | None = None):
    hooks = Hooks(train_progress=train_progress, message=(messages.append if messages is not None else lambda text: None))
    return run_sweep(variants(tree, overrides), out, hooks)


def assert_same_runs(left: Path, right: Path, names=NAMES) -> None:
    for name in names:
        a, b = load_file(left / name / "model.safetensors"), load_file(right / name / "model.safetensors")
        assert a.keys() == b.keys(), name
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}: {key}"
        assert (left / name / "metrics.jsonl").read_bytes() == (right / name / "metrics.jsonl").read_bytes(), name
        assert json.loads((left / name / "metrics.json").read_text()) == json.loads((right / name / "metrics.json").read_text())


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The sweep trained in one pass, and one after another: (folders, reads of each)."""
    folders, reads = {}, {}
    for mode, overrides in (("shared", ()), ("apart", ("train.shared_pass=false",))):
        folders[mode] = tmp_path_factory.mktemp(mode)
        with pytest.MonkeyPatch.context() as patch:
            reads[mode] = Reads(patch)
            sweep(folders[mode], *overrides)
    return folders, reads


def test_variants_trained_together_are_bit_identical_to_variants_trained_alone(reference):
    folders, _ = reference
    assert_same_runs(folders["shared"], folders["apart"])


def test_the_group_reads_each_batch_once_and_estimates_the_scale_once(reference):
    _, reads = reference
    # the reader thread may end a few batches ahead: its queue, the batch it was putting, one more
    ahead = TrainConfig().prefetch + 2
    assert reads["shared"].streams == 1 and reads["shared"].scales == 1
    assert STEPS <= reads["shared"].batches <= STEPS + ahead
    assert reads["apart"].streams == len(NAMES) and reads["apart"].scales == len(NAMES)
    assert reads["apart"].batches >= len(NAMES) * STEPS


def stop_after(step: int):
    """A step callback that stops training after ``step``."""
    def on_step(at: int, metrics) -> None:
        if at == step:
            raise Stop
    return on_step


def stop_at(step: int):
    """Sweep progress hooks that stop each pass after ``step``."""
    return lambda total: stop_after(step)


def checkpoint_steps(out: Path) -> dict[str, int]:
    return {name: max(int(p.name.split("-")[1]) for p in (out / name / "checkpoints").glob("step-*")) for name in NAMES}


def test_a_group_stopped_with_its_members_at_different_checkpoints_resumes_bit_identical(reference, tmp_path):
    tree = {**RECIPE, "variants": [{**v, "set": {**v.get("set", {}), "train.checkpoint_every": c}}
                                   for v, c in zip(RECIPE["variants"], (8, 20, 13))]}
    with pytest.raises(Stop):
        sweep(tmp_path, tree=tree, train_progress=stop_at(45))
    assert checkpoint_steps(tmp_path) == {"csae": 40, "topk": 40, "matryoshka": 39}
    assert not any((tmp_path / name / "model.safetensors").exists() for name in NAMES)
    with pytest.raises(Stop):  # the second pass starts at step 39 and stops again
        sweep(tmp_path, tree=tree, train_progress=stop_at(50))
    assert checkpoint_steps(tmp_path) == {"csae": 48, "topk": 40, "matryoshka": 39}
    messages: list[str] = []
    sweep(tmp_path, tree=tree, messages=messages)
    assert "variants 1, 2, 3/3: training csae, topk, matryoshka together (one pass over the store)" in messages
    assert {"csae: resumed from the checkpoint at step 48", "matryoshka: resumed from the checkpoint at step 39"} <= set(messages)
    assert_same_runs(tmp_path, reference[0]["shared"])


def test_a_kill_between_two_members_checkpoints_resumes_bit_identical(reference, tmp_path, monkeypatch):
    save = trainer_module.save_checkpoint

    def killed_at_the_second_save_of_step_40(folder, step, *args):
        if step == 40 and folder.parent.name == "topk":
            raise Stop
        return save(folder, step, *args)

    monkeypatch.setattr(trainer_module, "save_checkpoint", killed_at_the_second_save_of_step_40)
    with pytest.raises(Stop):
        sweep(tmp_path)
    monkeypatch.setattr(trainer_module, "save_checkpoint", save)
    assert checkpoint_steps(tmp_path) == {"csae": 40, "topk": 20, "matryoshka": 20}
    sweep(tmp_path)
    assert_same_runs(tmp_path, reference[0]["shared"])


def test_only_variants_with_one_store_and_one_batch_stream_are_grouped():
    tree = {**RECIPE, "variants": [
        *RECIPE["variants"],
        {"name": "bigger_batches", "set": {"train.batch_size": 128}},
        {"name": "alone", "set": {"train.shared_pass": False}},
        {"name": "other_data", "set": {"data.dataset.seed": 4}},
        {"name": "other_seed", "set": {"train.seed": 1}},
        {"name": "raw", "set": {"data.normalize": False}},
        {"name": "bigger_batches_too", "set": {"train.batch_size": 128, "model.method": "flat"}},
    ]}
    assert shared_pass_groups(variants(tree)) == [[0, 1, 2], [3, 8], [4], [5], [6], [7]]
    assert shared_pass_groups(variants(tree, ("train.shared_pass=false",))) == [[i] for i in range(9)]


class NoisyCascade(Cascade):
    """A cascade that draws from torch's global RNG at every step (as a stochastic encoder would)."""

    def forward(self, x, step=None):
        return super().forward(x + 0.05 * torch.randn_like(x), step)


MODEL = CascadeConfig(levels=LEVELS)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("store") / "acts.h5"
    with StoreWriter(path, width=16) as writer:
        writer.append(np.random.default_rng(0).standard_normal((800, 16)).astype(np.float32))
        writer.finish()
    return path


def noisy_trainers(store, root: Path, names=("a", "b")) -> list[Trainer]:
    rates = {"a": 1e-3, "b": 4e-3}
    return [Trainer(MODEL, TrainConfig(steps=30, batch_size=32, lr=rates[name], warmup_steps=3, checkpoint_every=10,
                                       log_every=1), store, RunDir(root / name), build=lambda width: NoisyCascade(width, MODEL))
            for name in names]


def assert_same_results(left, right) -> None:
    for a, b in zip(left, right):
        for (key, x), y in zip(a.cascade.state_dict().items(), b.cascade.state_dict().values()):
            assert torch.equal(x, y), key


def test_each_member_draws_its_own_random_numbers_and_a_killed_pass_resumes_bit_identical(store_path, tmp_path):
    with ActivationStore(store_path) as store:
        alone = [trainer.fit() for trainer in noisy_trainers(store, tmp_path / "alone")]
        together = fit_together(noisy_trainers(store, tmp_path / "together"))
        assert_same_results(together, alone)
        for name in "ab":
            states = [json.loads((tmp_path / mode / name / "checkpoints" / "step-00000030" / "state.json").read_text())
                      for mode in ("alone", "together")]
            assert states[0]["extra"]["rng"] == states[1]["extra"]["rng"]
        b_first = noisy_trainers(store, tmp_path / "killed", names=("b",))[0]
        with pytest.raises(Stop):  # b alone to its checkpoint at step 10, killed later
            b_first.fit(stop_after(14))
        resumed = fit_together(noisy_trainers(store, tmp_path / "killed"))  # a from step 0, b from step 10
        assert [r.resumed_from for r in resumed] == [None, 10]
        assert_same_results(resumed, alone)


def test_models_with_different_batch_streams_are_not_trained_together(store_path, tmp_path):
    with ActivationStore(store_path) as store:
        one, other = noisy_trainers(store, tmp_path)
        other.cfg = other.cfg.model_copy(update={"batch_size": 64})
        with pytest.raises(ValueError, match="same batch stream"):
            fit_together([one, other])
