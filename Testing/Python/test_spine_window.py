"""Preprocessing step 0: a spine-centred field of view, the same in training and at inference."""

import numpy as np
import pytest
import torch

from l3locator.engine import ScanSlices
from l3locator.preprocessing import (SPINE_WINDOW_BEHIND_BODY_MM, PreprocessingConfig, SliceWindows, preprocess_volume,
                                     slice_windows)
from l3locator.spine import vertebral_body_centres
from l3locator.volume import CTVolume

SPINE_200 = PreprocessingConfig(input_size=64, channel_mode="neighbors", neighbor_offset_mm=10.0, spine_field_mm=200.0)


def _body_with_spine(slices: int = 40, spine_at: tuple[int, int] = (170, 110)) -> CTVolume:
    """A 1 mm x 1 mm x 2.5 mm torso: soft tissue in an ellipse, a 30 mm bony body off the centre.

    ``spine_at`` is the body's (row, column) in the axial stack; the voxels are stored so that
    the axial stack is the array itself (LPS-like matrix).
    """
    rows, cols = 256, 240
    yy, xx = np.mgrid[:rows, :cols]
    torso = ((yy - 128) / 100.0) ** 2 + ((xx - 120) / 110.0) ** 2 <= 1.0
    body = (yy - spine_at[0]) ** 2 + (xx - spine_at[1]) ** 2 <= 15**2
    image = np.where(torso, 40.0, -1000.0)
    image[body] = 400.0
    voxels = np.repeat(image[None].astype(np.int16), slices, axis=0)
    volume = CTVolume(voxels, np.diag([-1.0, -1.0, 2.5, 1.0]))
    assert np.shares_memory(volume.axial_stack(), voxels)
    return volume


def test_the_window_is_centred_behind_the_vertebral_body_at_the_field_of_view_asked_for():
    volume = _body_with_spine(spine_at=(170, 110))
    centres = vertebral_body_centres(volume)
    assert centres is not None
    assert np.all(np.abs(centres[0] - 170) <= 3) and np.all(np.abs(centres[1] - 110) <= 3)
    windows = slice_windows(volume, SPINE_200)
    assert windows.side == 200  # 200 mm at 1 mm per pixel
    middle_row = windows.top + (windows.side - 1) / 2
    middle_col = windows.left + (windows.side - 1) / 2
    np.testing.assert_allclose(middle_row, centres[0] + SPINE_WINDOW_BEHIND_BODY_MM, atol=1.0)
    np.testing.assert_allclose(middle_col, centres[1], atol=1.0)
    assert slice_windows(volume, PreprocessingConfig(input_size=64)) is None


def test_the_network_sees_the_bone_at_the_same_place_wherever_it_lies_in_the_slice():
    """Two scans whose spines lie 40 pixels apart give the same network input."""
    left = preprocess_volume(_body_with_spine(spine_at=(170, 100)), SPINE_200)
    right = preprocess_volume(_body_with_spine(spine_at=(170, 140)), SPINE_200)
    bone = left[20] > 0.9
    assert bone.any()
    rows, cols = np.nonzero(bone.numpy())
    assert abs(cols.mean() - 31.5) < 2 and rows.mean() < 31.5  # body in front of the window's centre
    # The spine lands at the same place (to the tracker's 3 mm grid: one input pixel is 3.1 mm).
    other_rows, other_cols = np.nonzero((right[20] > 0.9).numpy())
    assert abs(other_cols.mean() - cols.mean()) <= 1.0 and abs(other_rows.mean() - rows.mean()) <= 1.0
    assert abs(len(other_rows) - len(rows)) <= 0.1 * len(rows)


def test_outside_the_slice_the_window_holds_the_lowest_hu():
    stack = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    windows = SliceWindows(top=np.array([-1, 2]), left=np.array([-2, 3]), side=3)
    cut = windows.cut(stack, np.array([1, 0]), fill=-200.0)
    assert cut.shape == (2, 3, 3) and cut.dtype == np.float32
    np.testing.assert_array_equal(cut[0], [[stack[1, 2, 3], stack[1, 2, 4], -200], [stack[1, 3, 3], stack[1, 3, 4], -200],
                                           [-200, -200, -200]])
    np.testing.assert_array_equal(cut[1], [[-200, -200, -200], [-200, -200, stack[0, 0, 0]], [-200, -200, stack[0, 1, 0]]])


def test_inference_prepares_the_same_inputs_as_the_training_cache():
    volume = _body_with_spine()
    cached = preprocess_volume(volume, SPINE_200)
    on_demand = ScanSlices.of_volume(volume, SPINE_200)
    ready = ScanSlices(SPINE_200, volume.slice_thickness, volume.superior_step, images=cached)
    indices = np.array([0, 7, 39, 20])
    torch.testing.assert_close(on_demand.inputs(indices), ready.inputs(indices))


def test_a_scan_without_a_spine_is_framed_at_its_centre():
    volume = CTVolume(np.full((10, 120, 100), 40, dtype=np.int16), np.diag([-1.0, -1.0, 2.0, 1.0]))
    assert vertebral_body_centres(volume) is None
    windows = slice_windows(volume, PreprocessingConfig(input_size=32, spine_field_mm=50.0))
    np.testing.assert_allclose(windows.top + (windows.side - 1) / 2, (120 - 1) / 2, atol=0.5)
    np.testing.assert_allclose(windows.left + (windows.side - 1) / 2, (100 - 1) / 2, atol=0.5)


def test_settings_round_trip_and_a_missing_window_is_refused():
    assert PreprocessingConfig.from_dict(SPINE_200.to_dict()) == SPINE_200
    old = PreprocessingConfig(input_size=64).to_dict()
    del old["spine_field_mm"]  # a model file written before step 0 existed: whole slices
    assert PreprocessingConfig.from_dict(old).spine_field_mm is None
    with pytest.raises(ValueError, match="spine_field_mm"):
        PreprocessingConfig(spine_field_mm=5.0)
    volume = _body_with_spine(slices=4)
    with pytest.raises(ValueError, match="windows"):
        ScanSlices(SPINE_200, 2.5, hu_stack=volume.axial_stack())
