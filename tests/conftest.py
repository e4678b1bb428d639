import pytest
import torch


@pytest.fixture(autouse=True)
def _deterministic():
    """Seeded, single-threaded torch: tiny models gain nothing from threads, and on a busy 2-core machine
    two threads each can be many times slower."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tmp_store(tmp_path):
    from probe_utils.store import Store

    return Store(tmp_path / "results")
