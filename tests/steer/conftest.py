"""Tiny offline models of the three families, built once per session into temporary folders."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from hsae_plugins.extractors import tiny_models  # noqa: E402

@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    """``tiny_model(family)`` → the folder of a saved tiny model (built on first use)."""
    built: dict[str, object] = {}

    def get(family: str):
        if family not in built:
            built[family] = tiny_models.build(family, tmp_path_factory.mktemp(f"tiny_{family}"))
        return built[family]

    return get
