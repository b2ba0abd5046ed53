"""Shared pytest fixtures for the whole repository."""
import os
from pathlib import Path

import pytest

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
