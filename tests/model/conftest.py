import pytest


@pytest.fixture(autouse=True)
def _every_model_test_on_one_torch_thread(one_torch_thread):
    """tests/conftest.py's one_torch_thread for each model test."""
