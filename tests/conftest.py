"""Suite-wide test settings: one torch thread, and every test starts from the same seed."""

import pytest
import torch


def pytest_configure(config):
    # The tests use tiny tensors: extra intra-op threads only add synchronisation, which on a
    # busy machine slows small training loops down by two orders of magnitude.
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed_torch():
    torch.manual_seed(0)
