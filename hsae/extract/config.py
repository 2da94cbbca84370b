"""The ``extract:`` section of a recipe (documented key by key in ``docs/extraction.md``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hsae import registry
from hsae.errors import BadInput
from hsae.interfaces.dataset import ImageDataset
from hsae.interfaces.extractor import Extractor

Pooling = Literal["none", "mean", "max", "cls"]


class ExtractConfig(BaseModel):
    """Which model and layer, which images, and how rows are written to the store."""

    model_config = ConfigDict(extra="forbid")

    extractor: dict[str, Any] = Field(description="an hsae.extractors plugin: {name: ..., <options>}")
    dataset: dict[str, Any] = Field(description="an hsae.datasets image dataset: {name: ..., <options>}")
    test_dataset: dict[str, Any] | None = Field(
        None, description="options merged over `dataset` for the test store written beside the training store, "
        "e.g. {split: test}; evaluation reads the test store (null: no test store)")
    pooling: Pooling = Field("none", description="none: one row per kept token; mean/max/cls: one row per image")
    chunk_images: int = Field(64, ge=1, description="commit the store at least every this many images")
    limit: int | None = Field(None, ge=1, description="extract only the first N readable images")
    store_dtype: Literal["float32", "float16"] = Field("float32", description="dtype of the stored activations")

    @field_validator("extractor", "dataset")
    @classmethod
    def _named(cls, spec: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(spec.get("name"), str):
            raise ValueError("needs a 'name' key naming the plugin")
        return spec


def _check_plugin(where: str, group: str, spec: dict[str, Any], base: type) -> None:
    options = {k: v for k, v in spec.items() if k != "name"}
    try:
        cls, _ = registry.validate_options(group, spec["name"], options)
    except BadInput as exc:
        raise BadInput(f"extract.{where}: {exc}") from None
    if not issubclass(cls, base):
        raise BadInput(f"extract.{where}: plugin {spec['name']!r} of {group} is not an {base.__name__}")


def held_out_section(section: dict[str, Any]) -> dict[str, Any]:
    """The extract section of the test store: ``test_dataset``'s options merged over ``dataset``."""
    test = dict(section)
    test["dataset"] = {**section["dataset"], **(test.pop("test_dataset") or {})}
    return test


def check_extract_config(section: dict[str, Any] | ExtractConfig) -> ExtractConfig:
    """Validate the section and both plugins' options without loading a model or reading images."""
    if isinstance(section, ExtractConfig):
        config = section
    else:
        try:
            config = ExtractConfig.model_validate(section)
        except ValidationError as exc:
            problems = "; ".join(
                f"extract.{'.'.join(str(p) for p in err['loc'])}: "
                + ("unknown key" if err["type"] == "extra_forbidden" else err["msg"])
                for err in exc.errors()
            )
            raise BadInput(f"invalid extract section: {problems}") from None
    _check_plugin("extractor", "hsae.extractors", config.extractor, Extractor)
    _check_plugin("dataset", "hsae.datasets", config.dataset, ImageDataset)
    if config.test_dataset is not None:
        _check_plugin("test_dataset", "hsae.datasets", {**config.dataset, **config.test_dataset}, ImageDataset)
    return config
