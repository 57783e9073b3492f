"""Shared pytest fixtures."""

from pathlib import Path

import pytest

#: Real CT scans beside the project (``../shared/data/real``); absent in a user's fresh clone.
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data/real``; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA
