"""Body composition at L3 (l3locator.body_composition): tissue masks on slices of known geometry,
measurements of (edited) label maps, the phantoms' tissue ground truth, and adult sanity bounds
on the real scans in ../shared (skipped without them)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pydicom
import pytest

from l3locator.body_composition import (
    TISSUE_COLOURS_RGB,
    TISSUE_LABELS,
    TISSUES,
    HURanges,
    axial_slice,
    check_height_m,
    measure_body_composition,
    measure_labels,
    segment_slice,
    slice_label_volume,
)
from l3locator.body_composition.compartments import segment
from l3locator.body_composition.masks import closing, dilate, erode, opening
from l3locator.phantoms import generate_phantom
from l3locator.phantoms.tissues import tissue_fractions, true_tissue_areas_cm2
from l3locator.phantoms.writing import write_dicom_series
from l3locator.reading import load_ct, read_dicom_series
from l3locator.volume import CTVolume

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
ACRIN = SHARED / "acrin_flt_breast001_abdomen_ct.nii.gz"
TPTBOX = SHARED / "tptbox_L3_crop.nii.gz"
#: L3 of the ACRIN abdomen, counted by hand (bench/results/acrin_level_count.md), and the slice
#: the shipped model answers (on L2).
ACRIN_L3_MIDDLE, ACRIN_MODEL_ANSWER = 50, 60


# --- a synthetic abdomen of known geometry ------------------------------------------------------------------------
def ellipse(rows_mm: np.ndarray, cols_mm: np.ndarray, centre: tuple[float, float], semi: tuple[float, float]) -> np.ndarray:
    """Pixels whose centre lies inside the ellipse (mm: ``centre`` = (row, column), ``semi`` = (rows, columns))."""
    return ((rows_mm - centre[0]) / semi[0]) ** 2 + ((cols_mm - centre[1]) / semi[1]) ** 2 <= 1.0


def synthetic_abdomen(spacing: tuple[float, float] = (0.9, 0.9), noise_hu: float = 8.0, wall_gap_mm: float = 0.0, seed: int = 0):
    """A slice with skin, subcutaneous fat, an abdominal wall, visceral fat, a vertebra with its
    canal, psoas and back muscles, and a bowel loop at muscle HU; rows run anterior to posterior.

    Returns the slice (HU), its spacing and the true masks ``{tissue or "bowel" / "bone": mask}``.
    """
    shape = (int(round(300 / spacing[0])), int(round(400 / spacing[1])))
    rows, cols = np.indices(shape, dtype=np.float64)
    rows = (rows - shape[0] / 2) * spacing[0]
    cols = (cols - shape[1] / 2) * spacing[1]
    body = ellipse(rows, cols, (0, 0), (120, 170))
    under_skin = ellipse(rows, cols, (0, 0), (118, 168))
    wall_outer, wall_inner = ellipse(rows, cols, (0, 0), (95, 142)), ellipse(rows, cols, (0, 0), (84, 130))
    wall = wall_outer & ~wall_inner
    if wall_gap_mm:
        wall &= ~((np.abs(cols) < wall_gap_mm / 2) & (rows < 0))  # a wide linea alba, front (row < 0)
    vertebra = ellipse(rows, cols, (55, 0), (17, 22))
    canal = ellipse(rows, cols, (82, 0), (8, 10))
    lamina = ellipse(rows, cols, (93, 0), (5, 16)) | (ellipse(rows, cols, (104, 0), (14, 3.5)))
    ring = (ellipse(rows, cols, (82, 0), (12, 14)) & ~canal) | lamina
    psoas = ellipse(rows, cols, (50, 38), (16, 13)) | ellipse(rows, cols, (50, -38), (16, 13))
    back = ellipse(rows, cols, (100, 36), (20, 24)) | ellipse(rows, cols, (100, -36), (20, 24))
    bowel = ellipse(rows, cols, (-20, 50), (14, 14))
    hu = np.full(shape, -1000.0)
    hu[body] = 20.0  # skin
    hu[under_skin] = -100.0  # subcutaneous fat
    muscle = (wall | back) & under_skin
    hu[wall_outer & ~wall] = -95.0
    hu[wall_inner] = -95.0  # visceral fat
    hu[muscle] = 45.0
    hu[psoas] = 45.0
    hu[bowel] = 40.0
    bone = vertebra | ring
    hu[bone] = 700.0
    hu[ellipse(rows, cols, (55, 0), (15, 20))] = 220.0  # cancellous
    hu[canal] = 10.0  # CSF
    hu += np.random.default_rng(seed).normal(0.0, noise_hu, shape)
    muscle = (muscle | psoas) & ~bone & ~canal
    truth = {
        "muscle": muscle,
        "sat": under_skin & ~wall_outer & ~muscle,
        "vat": wall_outer & ~wall & ~muscle & ~bone & ~canal & ~bowel & ~psoas,
        "bowel": bowel,
        "bone": bone | canal,
    }
    return hu, spacing, truth


def areas_of(labels: np.ndarray, spacing: tuple[float, float]) -> dict[str, float]:
    return {name: float((labels == TISSUE_LABELS[name]).sum()) * spacing[0] * spacing[1] / 100.0 for name in TISSUES}


def true_areas(truth: dict[str, np.ndarray], spacing: tuple[float, float]) -> dict[str, float]:
    return {name: float(truth[name].sum()) * spacing[0] * spacing[1] / 100.0 for name in ("muscle", "vat", "sat")}


# --- constants and ranges ---------------------------------------------------------------------------------------------
def test_tissue_labels_colours_and_hu_ranges():
    assert TISSUES == ("muscle", "imat", "vat", "sat") and TISSUE_LABELS == {"muscle": 1, "imat": 2, "vat": 3, "sat": 4}
    assert set(TISSUE_COLOURS_RGB) == set(TISSUES) and all(0.0 <= c <= 1.0 for rgb in TISSUE_COLOURS_RGB.values() for c in rgb)
    assert TISSUE_COLOURS_RGB["muscle"][0] > 0.8 and TISSUE_COLOURS_RGB["sat"][2] > 0.8  # red muscle, cyan SAT
    ranges = HURanges()
    assert (ranges.muscle, ranges.vat, ranges.sat, ranges.imat) == ((-29, 150), (-150, -50), (-190, -30), (-190, -30))
    changed = HURanges.from_dict({"muscle": [-30, 100]})
    assert changed.muscle == (-30.0, 100.0) and changed.vat == ranges.vat
    assert HURanges.from_dict(json.loads(json.dumps(changed.to_dict()))) == changed
    for bad in ({"bone": [0, 1]}, {"vat": [-50, -150]}, {"sat": [1, 2, 3]}):
        with pytest.raises(ValueError):
            HURanges.from_dict(bad)


def test_morphology_radii_are_millimetres_on_anisotropic_pixels():
    spacing = (0.5, 1.0)
    rows, cols = np.indices((200, 100), dtype=np.float64)
    disc = ellipse(rows * 0.5, cols * 1.0, (50, 50), (20, 20))
    pixel_mm2 = 0.5
    assert dilate(disc, 5.0, spacing).sum() * pixel_mm2 == pytest.approx(np.pi * 25**2, rel=0.02)
    assert erode(disc, 5.0, spacing).sum() * pixel_mm2 == pytest.approx(np.pi * 15**2, rel=0.03)
    assert opening(disc, 5.0, spacing).sum() == pytest.approx(disc.sum(), rel=0.02)
    assert not opening(disc, 21.0, spacing).any()
    two = disc | ellipse(rows * 0.5, cols * 1.0, (50, 50 + 46), (20, 20))  # a 6 mm gap between two discs
    bridged = closing(two, 4.0, spacing)
    assert bridged[100, 71] and not two[100, 71] and not closing(two, 2.0, spacing)[100, 71]


# --- segmentation on slices of known geometry -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def abdomen():
    return synthetic_abdomen()


def test_segment_slice_finds_each_tissue_of_a_known_slice(abdomen):
    hu, spacing, truth = abdomen
    labels = segment_slice(hu, spacing)
    assert labels.dtype == np.uint8 and labels.shape == hu.shape and set(np.unique(labels)) <= {0, 1, 2, 3, 4}
    found, expected = areas_of(labels, spacing), true_areas(truth, spacing)
    for name in ("muscle", "vat", "sat"):
        assert found[name] == pytest.approx(expected[name], rel=0.04), (name, found, expected)
    assert found["imat"] < 0.03 * expected["muscle"]  # no fat inside these muscles
    assert (labels[truth["bowel"]] == TISSUE_LABELS["muscle"]).mean() < 0.02  # a bowel loop in the fat is no muscle
    assert (labels[truth["bone"]] == 0).all()  # bone and the spinal canal are none of the tissues
    psoas_side = truth["muscle"] & (np.indices(hu.shape)[0] * spacing[0] < 150 + 60) & (np.indices(hu.shape)[0] * spacing[0] > 150 + 30)
    assert (labels[psoas_side] == TISSUE_LABELS["muscle"]).mean() > 0.9  # psoas and back muscles beside the vertebra


@pytest.mark.parametrize("view", ["flipped", "rotated"])
def test_segmentation_does_not_depend_on_which_side_of_the_array_is_anterior(abdomen, view):
    hu, spacing, _ = abdomen
    reference = areas_of(segment_slice(hu, spacing), spacing)
    turned = hu[::-1, ::-1] if view == "flipped" else np.rot90(hu)
    turned_spacing = spacing if view == "flipped" else spacing[::-1]
    found = areas_of(segment_slice(np.ascontiguousarray(turned), turned_spacing), turned_spacing)
    for name in TISSUES:
        assert found[name] == pytest.approx(reference[name], rel=0.01, abs=0.2), name


def test_anisotropic_pixels_give_the_same_areas():
    hu, spacing, truth = synthetic_abdomen(spacing=(1.2, 0.75))
    found, expected = areas_of(segment_slice(hu, spacing), spacing), true_areas(truth, spacing)
    for name in ("muscle", "vat", "sat"):
        assert found[name] == pytest.approx(expected[name], rel=0.05), (name, found, expected)


def test_a_gap_in_the_abdominal_wall_does_not_let_the_subcutaneous_fat_into_the_belly():
    hu, spacing, truth = synthetic_abdomen(wall_gap_mm=18.0)  # bridged
    result = segment(hu, spacing)
    found, expected = areas_of(result.labels, spacing), true_areas(truth, spacing)
    assert found["vat"] == pytest.approx(expected["vat"], rel=0.05) and found["sat"] == pytest.approx(expected["sat"], rel=0.06)
    assert not result.notes
    hu, spacing, truth = synthetic_abdomen(wall_gap_mm=40.0)  # too wide: the wall's convex hull, with a warning
    result = segment(hu, spacing)
    found, expected = areas_of(result.labels, spacing), true_areas(truth, spacing)
    assert found["vat"] == pytest.approx(expected["vat"], rel=0.10) and found["sat"] == pytest.approx(expected["sat"], rel=0.15)
    assert any("wide gap" in note for note in result.notes)


def test_a_body_cut_by_the_field_of_view_is_flagged(abdomen):
    hu, spacing, _ = abdomen
    cropped = np.ascontiguousarray(hu[60:-60, 100:-100])
    notes = segment(cropped, spacing).notes
    assert any("touches the field of view" in note for note in notes)
    assert not segment(hu, spacing).notes


def test_an_empty_slice_has_no_tissue():
    result = segment(np.full((64, 64), -1000.0), (1.0, 1.0))
    assert not result.labels.any() and result.notes
    with pytest.raises(ValueError):
        segment_slice(np.zeros((4, 4, 4)), (1.0, 1.0))
    with pytest.raises(ValueError):
        segment_slice(np.zeros((8, 8)), (0.0, 1.0))


# --- measuring a label map ------------------------------------------------------------------------------------------
def test_measure_labels_measures_an_edited_label_map():
    rng = np.random.default_rng(3)
    hu = rng.normal(0.0, 30.0, (40, 50))
    labels = np.zeros((40, 50), np.uint8)
    labels[:10, :20] = TISSUE_LABELS["muscle"]  # 200 pixels
    labels[20:25, :10] = TISSUE_LABELS["vat"]  # 50 pixels
    spacing = (0.8, 0.5)  # 0.004 cm^2 per pixel
    areas, mean_hu, smi = measure_labels(hu, labels, spacing, height_m=1.6)
    assert areas == pytest.approx({"muscle": 0.8, "imat": 0.0, "vat": 0.2, "sat": 0.0})
    assert mean_hu["muscle"] == pytest.approx(hu[:10, :20].mean()) and mean_hu["imat"] is None and mean_hu["sat"] is None
    assert smi == pytest.approx(0.8 / 1.6**2)
    edited = labels.copy()
    edited[:10, 10:20] = TISSUE_LABELS["imat"]  # a reader repaints half the muscle as IMAT
    areas, mean_hu, _ = measure_labels(hu, edited, spacing)
    assert areas["muscle"] == pytest.approx(0.4) and areas["imat"] == pytest.approx(0.4)
    assert mean_hu["imat"] == pytest.approx(hu[:10, 10:20].mean())
    with pytest.raises(ValueError):
        measure_labels(hu, labels[:-1], spacing)
    with pytest.raises(ValueError):
        measure_labels(hu, labels + 5, spacing)
    with pytest.raises(ValueError):
        measure_labels(hu, labels, spacing, height_m=172)


@pytest.mark.parametrize("height, ok", [(1.72, True), ("1.6", True), (0.3, False), (172.0, False), (float("nan"), False), ("tall", False)])
def test_heights_are_metres(height, ok):
    if ok:
        assert check_height_m(height) == pytest.approx(float(height))
    else:
        with pytest.raises(ValueError):
            check_height_m(height)


# --- a volume: slices, geometry, height, averaging -------------------------------------------------------------------
def volume_of_slices(slices: list[np.ndarray], spacing: tuple[float, float], thickness: float = 3.0, metadata: dict | None = None) -> CTVolume:
    matrix = np.diag([-spacing[1], -spacing[0], thickness, 1.0])
    matrix[:3, 3] = (100.0, 120.0, -400.0)
    return CTVolume(np.rint(np.stack(slices)).astype(np.int16), matrix, source="synthetic", metadata=metadata or {})


def test_measure_body_composition_on_a_volume_uses_the_slice_grid_height_and_half_width(abdomen):
    hu, spacing, truth = abdomen
    other, _, _ = synthetic_abdomen(seed=1)
    volume = volume_of_slices([other, hu, other], spacing, metadata={"patient_height_m": 1.8})
    plane, plane_spacing = axial_slice(volume, 1)
    assert plane_spacing == pytest.approx(spacing) and np.array_equal(plane, np.rint(hu).astype(np.int16))
    single = measure_body_composition(volume, 1)
    assert single.slices_used == [1] and single.height_m == 1.8
    assert single.smi_cm2_per_m2 == pytest.approx(single.areas_cm2["muscle"] / 1.8**2)
    assert single.areas_cm2["muscle"] == pytest.approx(true_areas(truth, spacing)["muscle"], rel=0.04)
    averaged = measure_body_composition(volume, 1, half_width_mm=3.0, height_m=1.6)
    assert averaged.slices_used == [0, 1, 2] and averaged.height_m == 1.6  # an explicit height wins
    assert np.array_equal(averaged.labels, single.labels)  # the label map is the centre slice's
    edge = measure_body_composition(volume, 0, half_width_mm=3.0)
    assert edge.slices_used == [0, 1] and any("2 of the 3 slices" in warning for warning in edge.warnings)
    document = json.loads(json.dumps(averaged.to_dict(), allow_nan=False))
    assert set(document) == {"slice_index", "slices_used", "areas_cm2", "mean_hu", "smi_cm2_per_m2", "height_m", "method", "hu_ranges", "warnings"}
    labels_volume = slice_label_volume(volume, 1, single.labels)
    assert labels_volume.voxels.shape == (1, *hu.shape)
    assert np.allclose(labels_volume.ras_of_ijk([7, 9, 0]), volume.ras_of_ijk([7, 9, 1]))
    with pytest.raises(IndexError):
        measure_body_composition(volume, 3)


def test_an_implausible_patients_size_is_not_used_for_the_smi(abdomen):
    hu, spacing, _ = abdomen
    volume = volume_of_slices([hu, hu], spacing, metadata={"patient_height_m": 172.0})
    composition = measure_body_composition(volume, 0)
    assert composition.smi_cm2_per_m2 is None and any("Patient's Size" in warning for warning in composition.warnings)


def test_the_dicom_reader_records_patients_size_in_metres(tmp_path, abdomen):
    hu, spacing, _ = abdomen
    volume = volume_of_slices([hu[::4, ::4]] * 3, (spacing[0] * 4, spacing[1] * 4))
    files = write_dicom_series(volume, tmp_path / "with")
    for path in files:
        ds = pydicom.dcmread(path)
        ds.PatientSize = "1.68"
        ds.save_as(path)
    assert read_dicom_series(tmp_path / "with").metadata["patient_height_m"] == pytest.approx(1.68)
    write_dicom_series(volume, tmp_path / "without")
    assert read_dicom_series(tmp_path / "without").metadata["patient_height_m"] is None


# --- phantoms: tissue ground truth and the done-when bounds -------------------------------------------------------
@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(1000006, shape_ij=(256, 256), slice_thickness_mm=5.0, extent="abdomen")


def test_phantom_tissue_truth_matches_what_was_painted(phantom):
    k = sum(phantom.l3_range) // 2
    fractions = tissue_fractions(phantom, k)
    assert fractions.shape == (4, 256, 256) and fractions.min() >= 0.0 and fractions.sum(axis=0).max() <= 1.0 + 1e-5
    hu = phantom.volume.voxels[k].astype(float)
    painted = phantom.params["hu"]
    for n, name in enumerate(TISSUES):
        whole = fractions[n] > 0.99
        if name == "imat":
            assert not whole.any()  # phantoms paint no intermuscular fat
            continue
        expected = painted["muscle"] if name == "muscle" else painted["visceral_fat" if name == "vat" else "fat"]
        assert whole.sum() > 500 and abs(np.median(hu[whole]) - expected) < 20.0, name
    areas = true_tissue_areas_cm2(phantom, k)
    assert 80 < areas["muscle"] < 250 and areas["vat"] > 20 and areas["sat"] > 20
    again = generate_phantom(1000006, shape_ij=(256, 256), slice_thickness_mm=5.0, extent="abdomen")
    assert np.array_equal(again.volume.voxels, phantom.volume.voxels)  # the truth leaves generation untouched


def test_phantom_at_l3_muscle_within_5_percent_and_fat_within_10_percent(phantom):
    k = sum(phantom.l3_range) // 2
    truth = true_tissue_areas_cm2(phantom, k)
    found = measure_body_composition(phantom.volume, k).areas_cm2
    assert found["muscle"] == pytest.approx(truth["muscle"], rel=0.05)
    assert found["vat"] == pytest.approx(truth["vat"], rel=0.10)
    assert found["sat"] == pytest.approx(truth["sat"], rel=0.10)


def test_phantom_stored_head_first_gives_the_same_truth_and_areas():
    kwargs = dict(shape_ij=(128, 128), slice_thickness_mm=5.0, extent="abdomen")
    feet_first = generate_phantom(1000001, **kwargs)
    head_first = generate_phantom(1000001, superior_first=True, **kwargs)
    k = sum(feet_first.l3_range) // 2
    flipped = head_first.volume.num_slices - 1 - k
    assert true_tissue_areas_cm2(head_first, flipped) == pytest.approx(true_tissue_areas_cm2(feet_first, k))
    assert measure_body_composition(head_first.volume, flipped).areas_cm2 == pytest.approx(measure_body_composition(feet_first.volume, k).areas_cm2)


# --- real scans: published adult ranges as sanity bounds (judged by eye in bench/results/body_composition.md) ---------
@pytest.mark.skipif(not ACRIN.is_file(), reason="../shared real scans not present")
@pytest.mark.parametrize("slice_index", [ACRIN_L3_MIDDLE, ACRIN_MODEL_ANSWER])
def test_real_abdomen_areas_lie_in_adult_ranges(slice_index):
    composition = measure_body_composition(load_ct(ACRIN), slice_index, half_width_mm=4.25)
    areas = composition.areas_cm2
    assert 90.0 <= areas["muscle"] <= 220.0  # adult SMA, roughly 100-200 cm^2
    assert 20.0 <= areas["vat"] <= 350.0 and 50.0 <= areas["sat"] <= 500.0 and areas["imat"] <= 30.0
    assert -10.0 <= composition.mean_hu["muscle"] <= 70.0 and -120.0 <= composition.mean_hu["vat"] <= -70.0
    assert not composition.warnings


@pytest.mark.skipif(not TPTBOX.is_file(), reason="../shared real scans not present")
def test_a_crop_without_the_body_wall_is_flagged_not_silently_measured():
    composition = measure_body_composition(load_ct(TPTBOX), 23)
    assert any("touches the field of view" in warning for warning in composition.warnings)
    assert composition.areas_cm2["sat"] < 5.0 and composition.areas_cm2["muscle"] < 80.0
