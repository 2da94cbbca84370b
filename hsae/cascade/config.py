"""Typed configuration of a cascade: the recipe's ``model`` section (spec §2-3)."""

from __future__ import annotations

from typing import Any, Literal

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

Normalisation = Literal["sum", "mean", "variance"]
StopGradient = Literal["none", "partial", "bilateral"]


class LevelSource(BaseModel):
    """A trained SAE used as this level, frozen: a SAELens v6 folder (cfg.json + sae_weights.safetensors)."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["saelens"] = "saelens"
    path: str = Field(description="the folder; a relative path is taken from the recipe's folder, else the current one")


class LevelConfig(BaseModel):
    """One level: its SAE (width, encoder plugin) and its place in the joint loss (Eq. 10/25)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    n_latents: int = Field(gt=0, description="number of latents n_l")
    encoder: dict[str, Any] = Field(description="encoder plugin: {name: ..., <options>}")
    lambda_: float = Field(
        0.001, alias="lambda", ge=0,
        description="λ_l, weight of L_l in the joint loss (ignored for level 1). [hsae] default 0.001: with "
        "stop_gradient none, L_l pulls the atoms below toward level l's clusters; λ_l = 1 collapses level 1 "
        "and 0.01 tips close settles (docs/cascade.md, 'Level balance'); the paper's recipes set 1 explicitly")
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
    settle_ratio: float | None = Field(
        None, gt=0, le=1,
        description="[hsae] ρ (off by default): two related clusters of atoms are also one concept when their mean "
        "cross-cosine is at least ρ times the geometric mean of their own mean cosines (siblings ≈ 1, cousins s'²)",
    )
    settle_z: float = Field(
        2.5, ge=0,
        description="[hsae] z: two clusters are one concept when they are related beyond z standard errors of random "
        "residuals in R^d and their cross-cosine falls short of their own mean cosines by less than z_n standard "
        "errors, z_n the one-sided z's level shared among the 2^(n-1)-1 splits of their n members",
    )
    settle_cousins: bool = Field(
        True,
        description="[hsae] a second pass: two related clusters are one concept only when, besides the noise "
        "test, their ratio cross-cosine / geometric mean of their own mean cosines exceeds the midpoint between "
        "the median ratio of the pairs the first pass merged (halves of one family) and of the related pairs it "
        "kept apart (cousins)",
    )
    settle_min_magnitude: float = Field(
        0.5, ge=0,
        description="[hsae] level 2 settles on the level-1 latents that fired since it last settled (or on the "
        "batch) whose mean activation where active is at least this share of the median activation over all "
        "their firings (weak spare latents are left out)",
    )
    normalisation: Normalisation = Field(
        "variance",
        description="scale of L_l: 'sum' Σ_d squared error per row (Eq. 3/9), 'mean' the same divided by d, "
        "'variance' divided by the batch variance of the level's inputs (an FVU)",
    )
    normalize_decoder: bool = Field(True, description="keep decoder columns at unit norm (spec §1)")
    b_dec_init: Literal["geometric_median", "mean", "zeros"] = "geometric_median"
    from_: LevelSource | None = Field(
        None, alias="from",
        description="[hsae] this level is a trained SAE, frozen (level 1 only): {format: saelens, path: FOLDER}; "
        "n_latents and encoder are read from it, and the run reads activations unscaled (docs/interop.md)")

    @model_validator(mode="before")
    @classmethod
    def _read_source(cls, data: Any, info: ValidationInfo) -> Any:
        """Fill ``n_latents`` and ``encoder`` from the ``from`` folder when they are not given, and
        make its path absolute (relative paths from the context's ``base_dir`` first)."""
        if not isinstance(data, dict) or not isinstance(data.get("from"), dict) or "path" not in data["from"]:
            return data
        source = dict(data["from"])
        path = Path(str(source["path"])).expanduser()
        base = (info.context or {}).get("base_dir")
        if not path.is_absolute() and base is not None and (Path(base) / path).exists() and not path.exists():
            path = Path(base) / path
        source["path"] = str(path.resolve())
        data = {**data, "from": source}
        if "n_latents" in data and "encoder" in data:
            return data
        from hsae.errors import BadInput
        from hsae.interop.saelens import read_saelens_config  # reads cfg.json only

        try:
            cfg, encoder = read_saelens_config(path)
        except BadInput as exc:
            raise ValueError(str(exc)) from None
        return {"n_latents": int(cfg["d_sae"]), "encoder": encoder, **data}

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

    @model_validator(mode="after")
    def _sources_on_level_one(self) -> "CascadeConfig":
        if any(level.from_ is not None for level in self.levels[1:]):
            raise ValueError("only level 1 can be a trained SAE ('from'); the levels above train on its atoms")
        return self

    @property
    def imported(self) -> bool:
        """Whether level 1 is a trained SAE read from a folder (frozen, on unscaled activations)."""
        return self.levels[0].from_ is not None
