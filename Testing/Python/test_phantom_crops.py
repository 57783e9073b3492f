"""Spine crops of phantoms: geometry kept, labels and ranges cut with the voxels, placement, noise, CLI."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from l3locator.cli import main
from l3locator.labels import l3_range_from_vertebra_map
from l3locator.phantoms import L3_LABEL, generate_phantom
from l3locator.phantoms.crops import EXTRA_NOISE_HU, FOV_MM, LENGTH_MM, SPINE_LABELS, crop_around_spine, crop_generator
from l3locator.phantoms.tissues import tissue_fractions
from l3locator.reading import load_ct


@pytest.fixture(scope="module")
def abdomen():
    return generate_phantom(5, shape_ij=(128, 128), slice_thickness_mm=2.5, extent="abdomen", noise_hu=0.0)


@pytest.mark.parametrize("seed", range(6))
def test_crop_is_a_window_of_the_phantom_in_the_same_ras_frame(abdomen, seed):
    crop = crop_around_spine(abdomen, crop_generator(seed))
    k0, j0, i0 = crop.params["crop"]["first_voxel_kji"]
    nk, nj, ni = crop.vertebra_labels.shape
    assert np.array_equal(crop.vertebra_labels, abdomen.vertebra_labels[k0 : k0 + nk, j0 : j0 + nj, i0 : i0 + ni])
    for ijk in ([0, 0, 0], [ni - 1, nj - 1, nk - 1]):
        assert np.allclose(crop.volume.ras_of_ijk(ijk), abdomen.volume.ras_of_ijk(np.add(ijk, [i0, j0, k0])))
    pixel_mm, thickness_mm = abdomen.params["pixel_spacing_mm"], abdomen.params["slice_thickness_mm"]
    side_mm = max(ni, nj) * pixel_mm
    assert FOV_MM[0] - 2 * pixel_mm <= side_mm <= FOV_MM[1] + 2 * pixel_mm and ni == nj
    assert nk * thickness_mm <= LENGTH_MM[1] + thickness_mm
    assert crop.l3_range == l3_range_from_vertebra_map(crop.vertebra_labels)
    assert crop.params["num_slices"] == nk and crop.params["shape_ij"] == [ni, nj]
    # The spine is in the crop: most of its pixels on a slice that shows T11-L5.
    k = int(np.flatnonzero(np.isin(crop.vertebra_labels, SPINE_LABELS).any(axis=(1, 2)))[0])
    full = np.isin(abdomen.vertebra_labels[k0 + k], SPINE_LABELS).sum()
    assert np.isin(crop.vertebra_labels[k], SPINE_LABELS).sum() >= 0.5 * full


def test_crop_adds_the_drawn_noise(abdomen):
    crop = crop_around_spine(abdomen, crop_generator(1))
    k0, j0, i0 = crop.params["crop"]["first_voxel_kji"]
    nk, nj, ni = crop.volume.voxels.shape
    added = crop.volume.voxels.astype(np.float64) - abdomen.volume.voxels[k0 : k0 + nk, j0 : j0 + nj, i0 : i0 + ni]
    drawn = crop.params["crop"]["extra_noise_hu"]
    assert EXTRA_NOISE_HU[0] <= drawn <= EXTRA_NOISE_HU[1]
    assert added.std() == pytest.approx(drawn, rel=0.1, abs=0.6)


def test_crops_mostly_hold_l3_but_not_always(abdomen):
    crops = [crop_around_spine(abdomen, crop_generator(seed)) for seed in range(40)]
    with_l3 = sum(c.l3_range is not None for c in crops)
    assert 10 <= with_l3 <= 36
    assert all(("L3" in c.level_ranges) == (L3_LABEL in c.vertebra_labels) for c in crops)


def test_same_stream_same_crop(abdomen):
    a, b = (crop_around_spine(abdomen, crop_generator(3)) for _ in range(2))
    assert np.array_equal(a.volume.voxels, b.volume.voxels) and a.params == b.params


def test_crop_without_a_lumbar_spine_is_refused(abdomen):
    no_spine = replace(abdomen, vertebra_labels=np.where(np.isin(abdomen.vertebra_labels, SPINE_LABELS), 0, abdomen.vertebra_labels))
    with pytest.raises(ValueError, match="T11-L5"):
        crop_around_spine(no_spine, crop_generator(0))


def test_a_crop_has_no_body_composition_truth(abdomen):
    with pytest.raises(ValueError, match="spine crop"):
        tissue_fractions(crop_around_spine(abdomen, crop_generator(0)), 0)


def test_cli_writes_spine_crops(tmp_path):
    assert main(["phantoms", str(tmp_path), "--count", "2", "--first-seed", "7", "--size", "96", "--extent", "abdomen", "--spine-crop"]) == 0
    ct = load_ct(tmp_path / "phantom000007.nii.gz")
    labels = load_ct(tmp_path / "phantom000007_vertebrae.nii.gz")
    assert ct.voxels.shape == labels.voxels.shape
    assert ct.spacing[0] * max(ct.voxels.shape[1:]) <= FOV_MM[1] + 2 * ct.spacing[0]
    assert np.isin(labels.voxels, SPINE_LABELS).any()
