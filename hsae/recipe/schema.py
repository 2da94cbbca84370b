"""The recipe: one pydantic model per YAML section. Key names are a public contract
(``docs/recipes.md``); unknown keys are rejected everywhere."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hsae.cascade.config import CascadeConfig
from hsae.steer.config import SteerConfig


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(Section):
    """Where activations come from: a dataset plugin that writes a store, or a user's store."""

    dataset: dict[str, Any] | None = Field(None, description="an hsae.datasets activation source: {name: ..., <options>}")
    activations: Path | None = Field(None, description="path of an activation store (docs/formats.md)")
    width: int | None = Field(None, gt=0, description="expected activation width d, checked against the store")
    normalize: bool | Literal["width", "unit"] = Field(
        True, description="divide activations by one global factor so that E||x||² = d (true or 'width') or "
        "E||x||² = 1 ('unit', the paper's, spec §9); false: as stored")
    test_activations: Path | None = Field(
        None, description="path of a test store beside data.activations: evaluation (HMS, recovery) reads it")

    @model_validator(mode="after")
    def _one_source(self) -> "DataConfig":
        if self.dataset is not None and self.activations is not None:
            raise ValueError("give either 'dataset' (a plugin) or 'activations' (a store path), not both")
        if self.dataset is not None and "name" not in self.dataset:
            raise ValueError("'dataset' needs a 'name' (an entry point of hsae.datasets)")
        return self


class TrainConfig(Section):
    steps: int = Field(2000, gt=0)
    batch_size: int = Field(1024, gt=0)
    lr: float = Field(1e-3, gt=0, description="Adam learning rate (levels may override)")
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = Field(100, ge=0, description="linear learning-rate warm-up")
    decay_start: float = Field(0.8, ge=0, le=1, description="fraction of steps after which the rate decays linearly to 0")
    grad_clip: float | None = Field(1.0, gt=0, description="gradient-norm clipping (null: off)")
    seed: int = 0
    checkpoint_every: int = Field(500, gt=0)
    keep_checkpoints: int = Field(2, gt=0)
    log_every: int = Field(10, gt=0, description="steps between lines of metrics.jsonl")
    dead_window: int = Field(500, gt=0, description="steps without firing after which a latent counts as dead")
    device: str = Field("auto", description="torch device; 'auto': CUDA when torch sees a GPU, else MPS, else the CPU")
    threads: int | None = Field(None, gt=0, description="torch CPU threads (default: torch's choice)")
    precision: Literal["float32", "bfloat16", "float16"] = Field(
        "float32", description="autocast dtype of the forward pass, meant for CUDA; parameters, optimizer state, "
        "thresholds and EMAs stay float32; float16 adds loss scaling")
    compile: bool = Field(False, description="torch.compile the model (the first steps are slow while it compiles)")
    prefetch: int = Field(2, ge=0, description="batches read ahead in a background thread (pinned memory on CUDA); 0: off")
    shared_pass: bool = Field(
        True, description="sweep variants with the same batch stream are trained together, each batch read once; "
        "false: one after another (less memory)")
    nonfinite: Literal["stop", "skip"] = Field(
        "stop", description="a step whose loss is NaN or infinite: 'stop' ends the run, keeping the last "
        "checkpoint (whose weights are all finite); 'skip' leaves that batch out (no update) and goes on")
    memory: Literal["auto", "fast", "lean"] = Field(
        "auto", description="'lean': the sparse path's (n, d) weight gradients are never formed whole "
        "(TopK/BatchTopK levels), for a step peak of ~1.25 x (parameters + Adam state + batch) instead of "
        "~1.4 x, the same result up to float rounding, slower on a GPU and on small models; 'auto': lean on a "
        "CPU once a parameter has 2^22 entries (where it is as fast), fast otherwise")


class EvalConfig(Section):
    backbone: dict[str, Any] | None = Field(
        None, description="hsae.backbones plugin for HMS image embeddings; null: skip HMS")
    pooling: Literal["mean", "max"] = Field("mean", description="token activations pooled per image")
    weighting: Literal["all", "top_m"] = Field("all", description="Eq. 41 weighting, or the plain top-M mean")
    inference: Literal["threshold", "authors"] = Field(
        "threshold", description="HMS's rule for encoders with a learned inference threshold (spec §7): 'threshold' "
        "codes and parents by the encoders' inference rule, alive units = those firing on some image; 'authors' "
        "the authors' eval_hms.py: BatchTopK keeps its batch budget per chunk of evaluation rows, parents by the "
        "plain ReLU of the pre-activations above 1e-3, alive units among a row's 12 largest ReLU pre-activations "
        "above 1e-3")
    top_m: int = Field(10, gt=0)
    null_draws: int = Field(20, gt=0)
    max_rows: int | None = Field(None, gt=0, description="evaluate on at most this many store rows")
    duplicate_threshold: float = Field(0.95, gt=0, le=1, description="cosine above which two atoms count as near-duplicates")
    match_threshold: float = Field(0.9, gt=0, le=1, description="cosine for matching learned atoms to planted leaves")


class ModelConfig(CascadeConfig):
    """The cascade (spec §2-3) or, with ``method``, a baseline of spec §6 (docs/baselines.md)."""

    method: str | dict[str, Any] = Field(
        "cascade", description="an hsae.methods plugin: cascade, flat, p_anneal, matryoshka, stacked, hac, "
        "spectral or an installed one; a name or {name: ..., <options>}")

    def cascade_config(self) -> CascadeConfig:
        """The section without ``method``: what a Cascade is built from and saved with."""
        return CascadeConfig.model_validate(self.model_dump(by_alias=True, exclude={"method"}))


SWEEP_STORES = "stores"  # the sweep's folder of shared activation stores: no variant may take the name


class Variant(Section):
    """One run of a sweep: the recipe with these ``--set``-style overrides (docs/recipes.md)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$", description="the run's folder under the sweep's --out")
    label: str | None = Field(None, description="column title in `hsae compare` (default: the name)")
    overrides: dict[str, Any] = Field(default_factory=dict, alias="set",
                                      description="dotted recipe keys and their values, e.g. {model.method: flat}")

    @model_validator(mode="after")
    def _not_reserved(self) -> "Variant":
        if self.name == SWEEP_STORES:
            raise ValueError(f"a variant cannot be named {SWEEP_STORES!r}: that folder holds the sweep's activations")
        return self


class Recipe(Section):
    name: str = "run"
    data: DataConfig = DataConfig()
    extract: dict[str, Any] | None = Field(None, description="extraction stage (docs/extraction.md)")
    model: ModelConfig
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    variants: list[Variant] = Field(default_factory=list, description="a sweep: one run per variant")
    steer: SteerConfig | None = Field(None, description="steering after training (docs/steering.md); needs an extract section")

    @model_validator(mode="after")
    def _has_data(self) -> "Recipe":
        sources = [self.data.dataset is not None, self.data.activations is not None, self.extract is not None]
        if sum(sources) != 1:
            raise ValueError(
                "give exactly one source of activations: data.dataset (a plugin), data.activations "
                "(a store path) or an extract section")
        return self

    @model_validator(mode="after")
    def _steer_needs_a_model(self) -> "Recipe":
        if self.steer is not None and self.extract is None:
            raise ValueError("a steer section needs an extract section: steering runs the model the activations came from")
        if self.steer is not None and self.variants:
            raise ValueError("a steer section steers one run; run `hsae steer` on each variant's folder instead")
        return self

    @model_validator(mode="after")
    def _method_fits(self) -> "Recipe":
        from hsae.methods import check_method  # the methods import the model code; load it on use

        check_method(self.model, self.train.steps)
        return self

    @model_validator(mode="after")
    def _distinct_variants(self) -> "Recipe":
        names = [v.name for v in self.variants]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"variant names must be distinct; repeated: {', '.join(repeated)}")
        return self
