"""The finished run that several run-layer tests read."""

from pathlib import Path

import pytest

from runkit import run_cli, small_recipe, write_recipe


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory) -> Path:
    """One finished run of SMALL_RECIPE, shared by tests that only read it."""
    folder = tmp_path_factory.mktemp("finished")
    result = run_cli("run", write_recipe(folder / "small.yaml", small_recipe()), "--out", folder / "run")
    assert result.code == 0, result.output
    return folder / "run"
