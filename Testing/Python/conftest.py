"""Shared pytest fixtures."""

from pathlib import Path

import numpy as np
import pytest
import torch

from l3locator.preprocessing import PreprocessingConfig
from l3locator.volume import CTVolume

#: Real CT scans beside the project (``../shared/data/real``); absent in a user's fresh clone.
SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data/real``; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


#: Preprocessing for tiny, fast training runs in tests.
TINY = PreprocessingConfig(input_size=32)


@pytest.fixture
def one_thread():
    """One torch thread: other jobs share the CPU, and timings and results are steadier."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def synthetic_volume(num_slices: int, l3_range: tuple[int, int], thickness: float = 5.0, seed: int = 0) -> CTVolume:
    """A soft-tissue box with a bone square per slice, larger (16 px) on the 'L3' slices than elsewhere (8 px)."""
    rng = np.random.default_rng(seed)
    voxels = np.full((num_slices, 40, 40), -1000, np.int16)
    voxels[:, 6:34, 6:34] = 40
    for k in range(num_slices):
        r = 8 if l3_range[0] <= k <= l3_range[1] else 4
        voxels[k, 22 - r : 22 + r, 20 - r : 20 + r] = 700
    voxels += rng.integers(-20, 20, voxels.shape, dtype=np.int16)
    return CTVolume(voxels, np.diag([0.9, 0.9, thickness, 1.0]), source="synthetic")


@pytest.fixture(scope="module")
def always_l3(tmp_path_factory) -> Path:
    """A model file whose network calls every slice L3 (a run's answer is known in advance)."""
    from test_pipeline import fixed_answer_model

    return fixed_answer_model(tmp_path_factory.mktemp("model") / "always_l3.pt", l3=True)


@pytest.fixture(scope="module")
def never_l3(tmp_path_factory) -> Path:
    """A model file whose network calls no slice L3."""
    from test_pipeline import fixed_answer_model

    return fixed_answer_model(tmp_path_factory.mktemp("model") / "never_l3.pt", l3=False)
