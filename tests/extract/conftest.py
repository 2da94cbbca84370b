"""Tiny offline models of each family, built once per test session, and small test images."""

from __future__ import annotations

import os

import pytest
from PIL import Image

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hsae_plugins.extractors import tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """``tiny_model_dir(family)`` → a saved tiny model directory (built on first use)."""
    built: dict[str, object] = {}

    def get(family: str):
        if family not in built:
            built[family] = tiny_models.build(family, tmp_path_factory.mktemp(f"tiny_{family}"))
        return built[family]

    return get


@pytest.fixture
def two_images():
    """A 224×224 and a 160×96 image (both sides multiples of 32, so no resizing surprises)."""
    return [Image.new("RGB", (224, 224), (200, 30, 30)), Image.effect_noise((160, 96), 40).convert("RGB")]
