"""Suite-wide test settings: one torch thread, every test starts from the same seed; tiny
offline models of each family, built once per session."""

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def pytest_configure(config):
    # The tests use tiny tensors: extra intra-op threads only add synchronisation, which on a
    # busy machine slows small training loops down by two orders of magnitude.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """``tiny_model_dir(family)`` → a saved tiny model directory (built on first use)."""
    from hsae_plugins.extractors import tiny_models

    built: dict[str, object] = {}

    def get(family: str):
        if family not in built:
            built[family] = tiny_models.build(family, tmp_path_factory.mktemp(f"tiny_{family}"))
        return built[family]

    return get
