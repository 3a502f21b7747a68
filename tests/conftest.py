"""Fixtures several test packages share."""

import pytest

from tests.lerobot_training import TrainedPolicy, record_sim_demos, train_tiny_act


@pytest.fixture
def one_torch_thread():
    """Toy-sized ops run faster on one thread, and far faster when other processes share the 2 cores."""
    import torch  # only the tests that ask for it load torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def lerobot_act(tmp_path_factory) -> TrainedPolicy:
    """A tiny ACT that lerobot-train trained on a short sim recording: made once per test run."""
    root = tmp_path_factory.mktemp("lerobot_act")
    return train_tiny_act(record_sim_demos(root / "demos"), root / "train")
