"""The benchmark cases: one training step of hsae (each encoder, dense and fast paths, cascades)
and of the same architectures in SAELens and dictionary_learning, each as its library runs it."""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from typing import Callable

import torch

from benchmarks.spec import Spec


class Stepper:
    """One training step at a time on given batches; ``model`` and ``optimizer`` for the memory
    accounting (parameters and optimizer state)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer

    def step(self, x: torch.Tensor, index: int) -> None:
        raise NotImplementedError


@dataclass(frozen=True)
class Case:
    """A named training step to time: how to build it, and what it needs installed."""

    name: str
    group: str  # hsae, cascade, saelens, dictionary_learning
    family: str  # the architecture: cases of one family are timed together, interleaved
    what: str  # one line for the table
    build: Callable[[Spec], Stepper]
    needs: str | None = None  # module that must be importable
    cycle: Callable[[Spec], int] = lambda spec: 1  # steps after which the step costs repeat

    def available(self) -> bool:
        return self.needs is None or importlib.util.find_spec(self.needs) is not None


# ----------------------------------------------------------------------------------------- hsae


class HsaeStepper(Stepper):
    """hsae's own training step (``hsae.train.trainer.train_step``, which hands to the lean step
    where ``train.memory`` picks it; ``memory_step`` says which): joint loss, backward,
    parallel-gradient removal, clipping at 1, Adam, decoder renormalisation."""

    def __init__(self, spec: Spec, levels: list[dict], fast: bool = True, memory: str = "auto"):
        from hsae.cascade.cascade import Cascade
        from hsae.cascade.config import CascadeConfig
        from hsae.recipe.schema import TrainConfig
        from hsae.train.lean_step import takes_lean_step

        self.model = Cascade(spec.d, CascadeConfig(levels=levels))
        self.model.reset_parameters(torch.Generator().manual_seed(spec.seed))
        self.model.train()
        for sae in self.model.levels.values():
            sae.fast_path = fast
        self.cfg = TrainConfig(lr=1e-4, grad_clip=1.0, memory=memory)
        self.optimizer = torch.optim.Adam(self.model.param_groups(self.cfg.lr), betas=self.cfg.betas)
        self.params = [p for group in self.optimizer.param_groups for p in group["params"]]
        self.memory_step = "lean" if takes_lean_step(self.cfg, self.params) else "fast"

    def step(self, x: torch.Tensor, index: int) -> None:
        from hsae.train.trainer import train_step

        train_step(self.model, self.optimizer, x, index, self.cfg, self.params)


# encoder plugin options and the level's sparsity_coef, per encoder
HSAE_ENCODERS = {
    "topk": lambda spec: ({"name": "topk", "k": spec.k}, 0.0),
    "batchtopk": lambda spec: ({"name": "batchtopk", "k": spec.k}, 0.0),
    "relu": lambda spec: ({"name": "relu"}, 1e-3),
    "jumprelu": lambda spec: ({"name": "jumprelu"}, 1e-3),
    "gated": lambda spec: ({"name": "gated"}, 1e-3),
}


def flat(encoder: str, fast: bool, memory: str = "auto") -> Callable[[Spec], Stepper]:
    """One level of width n with ``encoder``, on its fast path or the dense reference path, with
    the step of ``train.memory``."""

    def build(spec: Spec) -> Stepper:
        config, sparsity = HSAE_ENCODERS[encoder](spec)
        return HsaeStepper(spec, [{"n_latents": spec.n, "encoder": config, "sparsity_coef": sparsity}], fast, memory)

    return build


def cascade(depth: int, every: bool) -> Callable[[Spec], Stepper]:
    """Level 1 TopK-k of width n; each level above a quarter of the one below, TopK-1."""

    def build(spec: Spec) -> Stepper:
        levels = [{"n_latents": spec.n, "encoder": {"name": "topk", "k": spec.k}}]
        for _ in range(depth - 1):
            levels.append({"n_latents": levels[-1]["n_latents"] // 4, "encoder": {"name": "topk", "k": 1},
                           "update_every": spec.update_every if every else 1})
        return HsaeStepper(spec, levels)

    return build


# ------------------------------------------------------------------------------------- SAELens


class SAELensStepper(Stepper):
    """SAELens's ``SAETrainer._train_step`` (its training loop's step) on a training SAE built
    with the library's defaults for the architecture."""

    def __init__(self, spec: Spec, architecture: str):
        import sae_lens
        from sae_lens.config import SAETrainerConfig
        from sae_lens.training.sae_trainer import SAETrainer

        names = {"topk": "TopK", "batchtopk": "BatchTopK", "jumprelu": "JumpReLU", "gated": "Gated",
                 "standard": "Standard"}[architecture]
        options = {"k": spec.k} if architecture in ("topk", "batchtopk") else {}
        config = getattr(sae_lens, f"{names}TrainingSAEConfig")(d_in=spec.d, d_sae=spec.n, dtype="float32",
                                                               device="cpu", **options)
        torch.manual_seed(spec.seed)
        self.model = getattr(sae_lens, f"{names}TrainingSAE")(config)
        trainer_config = SAETrainerConfig(total_training_samples=spec.batch * 10_000, train_batch_size_samples=spec.batch,
                                          device="cpu", lr=1e-4, lr_end=1e-5)
        self.trainer = SAETrainer(cfg=trainer_config, sae=self.model, data_provider=iter(()))
        self.optimizer = self.trainer.optimizer

    def step(self, x: torch.Tensor, index: int) -> None:
        self.trainer._train_step(self.model, x)


# ---------------------------------------------------------------------------- dictionary_learning


class DictionaryLearningStepper(Stepper):
    """dictionary_learning's ``Trainer.update(step, x)`` with the library's defaults."""

    def __init__(self, spec: Spec, architecture: str):
        from dictionary_learning.trainers.batch_top_k import BatchTopKTrainer
        from dictionary_learning.trainers.gdm import GatedSAETrainer
        from dictionary_learning.trainers.jumprelu import JumpReluTrainer
        from dictionary_learning.trainers.standard import StandardTrainer
        from dictionary_learning.trainers.top_k import TopKTrainer

        trainer, options = {"topk": (TopKTrainer, {"k": spec.k}), "batchtopk": (BatchTopKTrainer, {"k": spec.k}),
                            "jumprelu": (JumpReluTrainer, {}), "gated": (GatedSAETrainer, {}),
                            "standard": (StandardTrainer, {})}[architecture]
        self.trainer = trainer(steps=100_000, activation_dim=spec.d, dict_size=spec.n, layer=0, lm_name="benchmark",
                               device="cpu", seed=spec.seed, **options)
        self.model = self.trainer.ae
        self.optimizer = self.trainer.optimizer

    def step(self, x: torch.Tensor, index: int) -> None:
        self.trainer.update(index, x)


def peer(stepper: type[Stepper], architecture: str) -> Callable[[Spec], Stepper]:
    """A peer library's step for ``architecture``, its warnings silenced."""

    def build(spec: Spec) -> Stepper:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return stepper(spec, architecture)

    return build


def _cases() -> list[Case]:
    every = {"cycle": lambda spec: spec.update_every}
    cases = [
        Case("hsae topk", "hsae", "topk", "TopK, fast path", flat("topk", True)),
        Case("hsae topk, memory fast", "hsae", "topk", "TopK, fast path, train.memory: fast",
             flat("topk", True, "fast")),
        Case("hsae topk dense", "hsae", "topk", "TopK, dense reference path", flat("topk", False)),
        Case("cascade 2 levels", "cascade", "topk", "TopK-k, n/4 TopK-1; every step", cascade(2, False)),
        Case("cascade 2 levels, update_every", "cascade", "topk", "the same, level 2 every m steps",
             cascade(2, True), **every),
        Case("cascade 3 levels", "cascade", "topk", "TopK-k, n/4 TopK-1, n/16 TopK-1; every step", cascade(3, False)),
        Case("cascade 3 levels, update_every", "cascade", "topk", "the same, levels 2-3 every m steps",
             cascade(3, True), **every),
        Case("hsae batchtopk", "hsae", "batchtopk", "BatchTopK, fast path", flat("batchtopk", True)),
        Case("hsae batchtopk dense", "hsae", "batchtopk", "BatchTopK, dense reference path", flat("batchtopk", False)),
        Case("hsae jumprelu", "hsae", "jumprelu", "JumpReLU (dense: no sparse form)", flat("jumprelu", False)),
        Case("hsae gated", "hsae", "gated", "Gated (dense: no sparse form)", flat("gated", False)),
        Case("hsae relu", "hsae", "standard", "ReLU + L1 (dense: no sparse form)", flat("relu", False)),
    ]
    for architecture in ("topk", "batchtopk", "jumprelu", "gated", "standard"):
        cases.append(Case(f"saelens {architecture}", "saelens", architecture, f"SAELens {architecture}, defaults",
                          peer(SAELensStepper, architecture), needs="sae_lens"))
        cases.append(Case(f"dictionary_learning {architecture}", "dictionary_learning", architecture,
                          f"dictionary_learning {architecture}, defaults",
                          peer(DictionaryLearningStepper, architecture), needs="dictionary_learning"))
    return cases


CASES = {case.name: case for case in _cases()}
