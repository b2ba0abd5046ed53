"""Shared pytest fixtures for the whole repository."""
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def real_data():
    """`real_data("hgb/ACM.zip")`: that path under the real dataset samples ($REAL_DATA_ROOT, else the
    `shared/data` folder beside the repository), or skip the test with a message naming where it looked."""
    root = Path(os.environ["REAL_DATA_ROOT"]) if os.environ.get("REAL_DATA_ROOT") else REPO.parent / "shared" / "data"

    def find(relative):
        path = root / relative
        if not path.exists():
            pytest.skip(f"real data sample not found at {path} (set REAL_DATA_ROOT to the shared data folder)")
        return path

    return find


@pytest.fixture(scope="module", autouse=True)
def restore_torch_threads():
    """Entry points called in-process set torch's thread count (`--cpu_threads`, smoke configs); give every test
    module the count it started with back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
