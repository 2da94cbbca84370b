"""The small finished runs the interop tests export and load."""

import pytest

from interopkit import tiny_runs_in


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory):
    return tiny_runs_in(tmp_path_factory.mktemp("interop"))
