"""One finished tiny sweep, shared by the sweep tests that only read it."""

from __future__ import annotations

from pathlib import Path

import pytest

from sweepkit import TINY_SWEEP, hsae, write_yaml


@pytest.fixture(scope="session")
def tiny_sweep(tmp_path_factory) -> tuple[Path, str]:
    """A finished TINY_SWEEP: (its --out folder, what `hsae run` printed)."""
    folder = tmp_path_factory.mktemp("sweep")
    code, output = hsae("run", write_yaml(folder / "tiny.yaml", TINY_SWEEP), "--out", folder / "out")
    assert code == 0, output
    return folder / "out", output
