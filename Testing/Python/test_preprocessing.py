"""The one preprocessing definition: clip, pad, resize, stretch, channels."""

import numpy as np
import pytest
import torch

from l3locator.preprocessing import PreprocessingConfig, assemble_inputs, preprocess_slices, preprocess_volume
from l3locator.volume import CTVolume


def test_output_shape_range_and_dtype():
    rng = np.random.default_rng(0)
    hu = rng.normal(0, 400, size=(5, 60, 40)).astype(np.int16)
    out = preprocess_slices(hu, PreprocessingConfig(input_size=32))
    assert out.shape == (5, 32, 32) and out.dtype == torch.float32
    assert float(out.min()) == 0.0 and float(out.max()) == 1.0


def test_clip_window_and_percentile_stretch_match_a_direct_computation():
    """A 224x224 slice needs no resize: the output is the clipped slice stretched between its percentiles."""
    rng = np.random.default_rng(1)
    hu = rng.uniform(-1000, 3000, size=(1, 224, 224)).astype(np.float32)
    config = PreprocessingConfig()
    clipped = np.clip(hu[0], -200, 1500)
    low, high = np.percentile(clipped, [1, 99])
    expected = np.clip((clipped - low) / (high - low), 0, 1)
    np.testing.assert_allclose(preprocess_slices(hu, config)[0].numpy(), expected, atol=1e-4)


def test_window_stretch_maps_the_clip_window_whatever_else_is_in_the_slice():
    """With ``stretch="window"`` a pixel's value depends on its HU alone: -200 -> 0, 1500 -> 1,
    linear between; adding bright bone elsewhere changes nothing (the percentile stretch shifts)."""
    rng = np.random.default_rng(3)
    hu = rng.uniform(-300, 400, size=(1, 64, 64)).astype(np.float32)
    config = PreprocessingConfig(input_size=64, stretch="window")
    expected = (np.clip(hu[0], -200, 1500) + 200) / 1700
    np.testing.assert_allclose(preprocess_slices(hu, config)[0].numpy(), expected, atol=1e-6)
    with_bone = hu.copy()
    with_bone[0, :16, :] = 1200.0
    window = preprocess_slices(with_bone, config)[0, 16:]
    percentile = preprocess_slices(with_bone, PreprocessingConfig(input_size=64))[0, 16:]
    torch.testing.assert_close(window, preprocess_slices(hu, config)[0, 16:])
    assert not torch.allclose(percentile, preprocess_slices(hu, PreprocessingConfig(input_size=64))[0, 16:])


def test_stretch_white_floor_keeps_soft_tissue_grey_and_leaves_bright_slices_alone():
    """``stretch_min_white_hu``: a slice whose 99th percentile is soft tissue (~100 HU) is stretched
    to that floor instead (soft tissue stays grey); a slice with bright bone above the floor is
    stretched exactly as without it."""
    rng = np.random.default_rng(4)
    soft = rng.uniform(-150, 100, size=(1, 64, 64)).astype(np.float32)
    floored = PreprocessingConfig(input_size=64, stretch_min_white_hu=300.0)
    paper = PreprocessingConfig(input_size=64)
    low = float(np.percentile(soft[0], 1))
    expected = np.clip((soft[0] - low) / (300.0 - low), 0.0, 1.0)
    np.testing.assert_allclose(preprocess_slices(soft, floored)[0].numpy(), expected, atol=1e-5)
    assert float(preprocess_slices(soft, paper).max()) == 1.0
    assert float(preprocess_slices(soft, floored).max()) < 0.7
    bright = soft.copy()
    bright[0, :8, :] = 900.0  # 12 % of the slice: the 99th percentile is bone, above the floor
    torch.testing.assert_close(preprocess_slices(bright, floored), preprocess_slices(bright, paper))


@pytest.mark.parametrize("floor", [-200.0, -500.0, 1600.0])
def test_stretch_white_floor_outside_the_clip_window_is_refused(floor):
    with pytest.raises(ValueError, match="stretch_min_white_hu"):
        PreprocessingConfig(stretch_min_white_hu=floor)


def test_stretch_white_floor_with_the_window_stretch_is_refused():
    with pytest.raises(ValueError, match="percentile stretch only"):
        PreprocessingConfig(stretch="window", stretch_min_white_hu=300.0)


def test_unknown_stretch_is_refused():
    with pytest.raises(ValueError, match="stretch"):
        PreprocessingConfig(stretch="histogram")


def test_values_outside_the_hu_window_do_not_change_the_result():
    rng = np.random.default_rng(2)
    hu = rng.uniform(-200, 1500, size=(1, 64, 64)).astype(np.float32)
    extreme = hu.copy()
    extreme[0, :3, :3] = -3000  # below the window: behaves like -200
    base = hu.copy()
    base[0, :3, :3] = -200
    config = PreprocessingConfig(input_size=64)
    torch.testing.assert_close(preprocess_slices(extreme, config), preprocess_slices(base, config))


def test_constant_slice_becomes_zeros():
    out = preprocess_slices(np.full((2, 50, 50), 40.0), PreprocessingConfig(input_size=32))
    assert torch.count_nonzero(out) == 0


def test_non_square_slice_is_padded_not_stretched():
    """A bright square in a wide slice must stay square after preprocessing."""
    hu = np.full((1, 100, 200), -1000.0)
    hu[0, 40:60, 90:110] = 1000.0
    out = preprocess_slices(hu, PreprocessingConfig(input_size=100))[0].numpy() > 0.5
    rows, cols = np.flatnonzero(out.any(axis=1)), np.flatnonzero(out.any(axis=0))
    assert abs((rows[-1] - rows[0]) - (cols[-1] - cols[0])) <= 1


def _ramp_volume(slices: int = 9, superior_first: bool = False) -> CTVolume:
    """Each slice has a constant-free pattern scaled by its index so slices are distinguishable."""
    yy, xx = np.mgrid[:32, :32]
    voxels = np.stack([(xx * 10 + yy + k * 50).astype(np.float32) - 200 for k in range(slices)])
    matrix = np.diag([1.0, 1.0, -2.0 if superior_first else 2.0, 1.0])
    return CTVolume(voxels, matrix)


def test_repeat_mode_puts_the_slice_in_every_channel():
    volume = _ramp_volume()
    config = PreprocessingConfig(input_size=32)
    slices = preprocess_volume(volume, config)
    inputs = assemble_inputs(slices, [4], config, volume.slice_thickness, volume.superior_step)
    assert inputs.shape == (1, 3, 32, 32)
    for c in range(3):
        torch.testing.assert_close(inputs[0, c], slices[4])


@pytest.mark.parametrize("superior_first", [False, True])
def test_neighbors_mode_orders_channels_inferior_centre_superior(superior_first):
    volume = _ramp_volume(superior_first=superior_first)
    config = PreprocessingConfig(input_size=32, channel_mode="neighbors", neighbor_offset_mm=4.0)  # 2 slices of 2 mm
    slices = preprocess_volume(volume, config)
    inputs = assemble_inputs(slices, [4, 0], config, volume.slice_thickness, volume.superior_step)
    inferior, superior = (6, 2) if superior_first else (2, 6)
    torch.testing.assert_close(inputs[0, 0], slices[inferior])
    torch.testing.assert_close(inputs[0, 1], slices[4])
    torch.testing.assert_close(inputs[0, 2], slices[superior])
    # At the scan's end the missing neighbour is clamped to the edge slice.
    edge = 0
    torch.testing.assert_close(inputs[1, 0 if not superior_first else 2], slices[edge])


def test_config_round_trip_and_rejects_unknown_keys():
    config = PreprocessingConfig(input_size=64, channel_mode="neighbors")
    assert PreprocessingConfig.from_dict(config.to_dict()) == config
    with pytest.raises(ValueError, match="unknown"):
        PreprocessingConfig.from_dict({**config.to_dict(), "gamma": 2})
    with pytest.raises(ValueError):
        PreprocessingConfig(channel_mode="rgb")


def test_read_only_slices_are_taken_without_a_torch_warning_and_never_written(recwarn):
    """A NIfTI volume is a read-only view of the file's bytes; float32 input must not be clamped in place."""
    rng = np.random.default_rng(3)
    read_only = rng.integers(-1000, 2000, size=(3, 40, 40)).astype(np.int16)
    read_only.flags.writeable = False
    float_slices = rng.uniform(-3000, 3000, size=(3, 40, 40)).astype(np.float32)
    before = float_slices.copy()
    config = PreprocessingConfig(input_size=32)
    torch.testing.assert_close(preprocess_slices(read_only, config), preprocess_slices(read_only.copy(), config))
    preprocess_slices(float_slices, config)
    preprocess_slices(torch.from_numpy(float_slices), config)
    assert np.array_equal(float_slices, before)
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_preprocess_volume_of_a_read_only_volume_gives_no_warning(recwarn):
    voxels = _ramp_volume().voxels.astype(np.int16)
    voxels.flags.writeable = False
    volume = CTVolume(voxels, np.diag([-1.0, -1.0, 2.0, 1.0]))  # LPS-like: axial_stack is voxels itself
    stack = volume.axial_stack()
    assert np.shares_memory(stack, voxels) and stack.flags.c_contiguous and not stack.flags.writeable
    slices = preprocess_volume(volume, PreprocessingConfig(input_size=32))
    assert slices.shape == (9, 32, 32)
    assert not [w for w in recwarn if "not writable" in str(w.message)]


def test_stored_settings_with_an_unknown_key_are_refused_by_every_settings_class():
    """A model file or log from a newer version is refused, not read with silent defaults."""
    from l3locator.locate import LocateRule
    from l3locator.training.design import DesignParameters
    from l3locator.training.train import TrainingBudget

    for settings_class, what in ((PreprocessingConfig, "preprocessing settings"), (LocateRule, "locate rule settings"),
                                 (DesignParameters, "design parameters"), (TrainingBudget, "training budget settings")):
        with pytest.raises(ValueError, match=f"unknown {what}: \\['from_the_future'\\]"):
            settings_class.from_dict({"from_the_future": 1})
    assert PreprocessingConfig.from_dict(PreprocessingConfig(input_size=64).to_dict()) == PreprocessingConfig(input_size=64)
