"""The ``steer:`` section of a recipe (spec §8; keys documented in ``docs/steering.md``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

PAPER_STEERING_PROMPT = "Describe what is in this image in one short sentence."
"""The caption prompt of the paper's steering runs (Appendix E.6)."""

ARMS = ("baseline", "rand1", "best_child", "cluster")
MATCHED = "matched"
"""The arm of the matched run (the paper's matched-Matryoshka clusters)."""


class Concept(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="what the judge is asked about, e.g. 'table'")
    keywords: list[str] = Field(default_factory=list, description="words expressing it (the keyword judge); default: the name")


class SteerConfig(BaseModel):
    """Which clusters, which images, how the clamp is written back, who judges."""

    model_config = ConfigDict(extra="forbid")

    level: int = Field(2, ge=2, description="clusters are latents of this level with at least two children")
    clusters: int | list[int] = Field(10, description="how many clusters drawn at random (seeded), or their latent indices")
    seed: int = Field(0, description="seed of the cluster draw, the images per cluster and the rand1 atom")
    images: dict[str, Any] | None = Field(
        None, description="held-out images: an hsae.datasets image dataset {name: ..., <options>}; "
        "default: the dataset the run was extracted from")
    exclude_training: bool = Field(True, description="leave out images whose id the run's store holds")
    images_per_cluster: int = Field(100, ge=1, description="held-out images drawn per cluster")
    top_images: int = Field(10, ge=1, description="T: the cluster's top training images that set its clamp")
    alpha: float = Field(4.0, gt=0, description="insertion clamp c = alpha * mu_C")
    suppression: bool = Field(True, description="also clamp to 0 (suppression) on every image")
    write_back: Literal["reconstruction", "error_preserving"] = Field(
        "reconstruction", description="write back W_dec z' + b_dec (the paper) or h + W_dec (z' - z)")
    code: Literal["relu", "encoder"] = Field(
        "relu", description="the code edited: the dense ReLU code (the authors' hook) or the SAE's encoder")
    arms: list[str] = Field(list(ARMS), description="which of baseline, rand1, best_child, cluster to run")
    matched_run: Path | None = Field(
        None, description="a run on the same activations (e.g. a Matryoshka SAE): adds the 'matched' arm, "
        "the |C| atoms with the lowest mean activation rank on the cluster's top images")
    prompt: str = Field(PAPER_STEERING_PROMPT, description="the caption prompt")
    max_new_tokens: int = Field(30, ge=1)
    batch_size: int = Field(8, ge=1, description="images per generate call")
    judge: dict[str, Any] = Field({"name": "keyword"}, description="an hsae.judges plugin {name: ..., <options>}")
    concepts: dict[str, str | Concept] = Field(
        default_factory=dict, description="concept of a cluster by unit name ('2:17': table, or {name:, keywords:}); "
        "default: the run's labels.json (hsae label)")
    labeller: dict[str, Any] | None = Field(
        {"name": "class_names"}, description="an hsae.labellers plugin that names the clusters without a concept "
        "(null: such clusters are an error)")
    extractor: dict[str, Any] = Field(default_factory=dict, description="options of the run's extractor to override, e.g. {device: cuda}")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        unknown = [a for a in arms if a not in ARMS]
        if unknown:
            raise ValueError(f"unknown arms {unknown}; the arms are {', '.join(ARMS)} (the matched arm comes with matched_run)")
        if "baseline" not in arms:
            raise ValueError("the baseline arm is needed: suppression is scored on rows whose baseline expresses the concept")
        return arms

    @field_validator("images", "judge", "labeller")
    @classmethod
    def _named(cls, spec: dict[str, Any] | None) -> dict[str, Any] | None:
        if spec is not None and not isinstance(spec.get("name"), str):
            raise ValueError("needs a 'name' key naming the plugin")
        return spec

    @field_validator("clusters")
    @classmethod
    def _some_clusters(cls, clusters: int | list[int]) -> int | list[int]:
        if (isinstance(clusters, int) and clusters < 1) or (isinstance(clusters, list) and not clusters):
            raise ValueError("give a positive number of clusters or a non-empty list of latent indices")
        return clusters
