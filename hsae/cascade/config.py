"""Typed configuration of a cascade: the recipe's ``model`` section (spec §2-3)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

Normalisation = Literal["sum", "mean", "variance"]
StopGradient = Literal["none", "partial", "bilateral"]


class LevelConfig(BaseModel):
    """One level: its SAE (width, encoder plugin) and its place in the joint loss (Eq. 10/25)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    n_latents: int = Field(gt=0, description="number of latents n_l")
    encoder: dict[str, Any] = Field(description="encoder plugin: {name: ..., <options>}")
    lambda_: float = Field(
        0.01, alias="lambda", ge=0,
        description="λ_l, weight of L_l in the joint loss (ignored for level 1). [hsae] default 0.01: with "
        "stop_gradient none, λ_l = 1 pulls level-1 atoms onto level-l directions and collapses level 1 "
        "(docs/cascade.md, 'Level balance'); the paper's recipes set 1 explicitly")
    sparsity_coef: float = Field(0.0, ge=0, description="λ_s^l, coefficient of the encoder's sparsity term S")
    usage_coef: float = Field(
        0.0, ge=0,
        description="[hsae] coefficient of the L2,1 usage penalty Σ_k ||U[:, k]||₂ / rows on the level's code "
        "matrix over its batch: it makes whole latents go unused, so spare latents do not split a concept",
    )
    lr: float | None = Field(None, gt=0, description="learning rate of this level (default: train.lr)")
    start_step: int = Field(0, ge=0, description="L_l is off before this step")
    lambda_warmup: int = Field(0, ge=0, description="steps over which λ_l ramps linearly from 0 after start_step")
    update_every: int = Field(
        1, ge=1,
        description="[hsae] compute this level (l ≥ 2) on every m-th step only, and only when the levels below "
        "are due too; on the other steps L_l is left out (ignored for level 1)",
    )
    settle_every: int = Field(
        0, ge=0,
        description="[hsae] every this many steps from start_step (0: never), re-initialise this level (l ≥ 2) from "
        "the distinct clusters of the live atoms below and prune the latents beyond their count "
        "(docs/cascade.md, 'Settling the upper levels')",
    )
    settle_ratio: float = Field(
        0.7, gt=0, le=1,
        description="[hsae] ρ: two clusters of atoms are one concept when their mean cross-cosine is at least ρ times "
        "the geometric mean of their own mean cosines (siblings ≈ 1, cousins s'²)",
    )
    settle_z: float = Field(
        3.0, ge=0,
        description="[hsae] z: two clusters are also one concept when their cross-cosine falls short of that mean "
        "by less than z standard errors of random residuals in R^d",
    )
    settle_min_magnitude: float = Field(
        0.5, ge=0,
        description="[hsae] level 2 settles on the level-1 latents active on the batch whose mean activation where "
        "active is at least this share of the median over them (weak spare latents are left out)",
    )
    normalisation: Normalisation = Field(
        "variance",
        description="scale of L_l: 'sum' Σ_d squared error per row (Eq. 3/9), 'mean' the same divided by d, "
        "'variance' divided by the batch variance of the level's inputs (an FVU)",
    )
    normalize_decoder: bool = Field(True, description="keep decoder columns at unit norm (spec §1)")
    b_dec_init: Literal["geometric_median", "mean", "zeros"] = "geometric_median"

    @field_validator("encoder")
    @classmethod
    def _has_name(cls, value: dict[str, Any]) -> dict[str, Any]:
        if "name" not in value:
            raise ValueError("the encoder needs a 'name' (an entry point of hsae.encoders)")
        return value


class CascadeConfig(BaseModel):
    """A cascade of L ≥ 1 levels; level l ≥ 2 trains on level l−1's decoder columns."""

    model_config = ConfigDict(extra="forbid")

    levels: list[LevelConfig] = Field(min_length=1)
    stop_gradient: StopGradient = Field("none", description="Eq. 34-35 ablations: none, partial, bilateral")
    mask_threshold: float = Field(0.0, ge=0, description="ε of the active sets (Eq. 26-27)")
