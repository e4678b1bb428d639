import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


@pytest.fixture
def tmp_store(tmp_path):
    from probe_utils.store import Store

    return Store(tmp_path / "results")
