"""Phantom landmarks a network could count from (here the kidneys, the liver tip and the iliac
crests; the aortic bifurcation was widened likewise) must vary in level between patients as much as
real ones do, or the network learns them as a shortcut to L3 instead of looking at the vertebra
(issue 16)."""

from __future__ import annotations

import numpy as np
import pytest

from l3locator.phantoms.abdomen import upper_abdomen
from l3locator.phantoms.patient import Patient
from l3locator.phantoms.retroperitoneum import kidneys_and_crura

SEEDS = range(40)


def _landmarks_mm(seed: int) -> dict[str, float]:
    """Landmark heights (mm) relative to the top of L2 (kidney, liver) or of the last lumbar vertebra (crest)."""
    patient = Patient(np.random.default_rng(seed), "normal")
    kidneys_and_crura(patient)
    upper_abdomen(patient)
    l2_top, last_top = patient.lumbar[1].top_mm, patient.lumbar[-1].top_mm
    return {"left_kidney": patient.params["kidney_centres_mm"][1] - l2_top, "liver_tip": patient.params["liver_tip_mm"] - l2_top,
            "iliac_crest": patient.iliac_crest_mm - last_top}


@pytest.fixture(scope="module")
def landmarks() -> dict[str, np.ndarray]:
    drawn = [_landmarks_mm(seed) for seed in SEEDS]
    return {name: np.array([d[name] for d in drawn]) for name in drawn[0]}


@pytest.mark.parametrize("name, low_mm, high_mm, min_spread_mm", [
    ("left_kidney", -45.0, 35.0, 50.0),  # mid L1 to the L2/L3 disc
    ("liver_tip", -80.0, 15.0, 60.0),    # L1 down to L4
    ("iliac_crest", -10.0, 40.0, 30.0),  # the last lumbar body's top up to mid L4
])
def test_landmark_levels_vary_over_about_a_vertebra(landmarks, name, low_mm, high_mm, min_spread_mm):
    drawn = landmarks[name]
    assert drawn.min() >= low_mm and drawn.max() <= high_mm
    assert np.ptp(drawn) >= min_spread_mm
