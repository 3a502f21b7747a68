import pytest
import torch


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Toy-sized ops run faster on one thread, and far faster when other processes share the 2 cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
