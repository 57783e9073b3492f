"""Synthetic CT phantom: determinism, speed, geometry, label ground truth, anatomy cues, variants."""

from __future__ import annotations

import json
import time

import nibabel as nib
import numpy as np
import pytest

from l3locator.labels import l3_range_from_vertebra_map
from l3locator.phantoms import L3_LABEL, VERSE_IDS, generate_phantom, write_phantom_case


def _mid(ranges: dict[str, tuple[int, int]], name: str) -> int:
    k0, k1 = ranges[name]
    return (k0 + k1) // 2


def _lateral_bone(ph, k: int, lo_mm: float = 60.0, hi_mm: float = 150.0, hu: float = 450.0) -> int:
    """Bone pixels (> ``hu``) 60-150 mm left or right of the spine on stored slice ``k`` (ribs, not arms or spine)."""
    px = ph.volume.spacing[0]
    spine_cols = np.nonzero(ph.vertebra_labels[k])[1]
    centre = np.median(spine_cols) if spine_cols.size else ph.vertebra_labels.shape[2] / 2
    dist = np.abs(np.arange(ph.vertebra_labels.shape[2]) - centre) * px
    band = (dist >= lo_mm) & (dist <= hi_mm)
    return int((ph.volume.voxels[k][:, band] > hu).sum())


@pytest.fixture(scope="module")
def abdomen():
    return generate_phantom(3, shape_ij=(96, 96), slice_thickness_mm=5.0, extent="abdomen", noise_hu=15.0)


@pytest.fixture(scope="module")
def whole_body():
    return generate_phantom(4, shape_ij=(96, 96), slice_thickness_mm=5.0, extent="whole_body", noise_hu=10.0, variant="normal")


def test_same_seed_same_voxels_other_seed_differs():
    a = generate_phantom(21, shape_ij=(48, 48), slice_thickness_mm=5.0)
    b = generate_phantom(21, shape_ij=(48, 48), slice_thickness_mm=5.0)
    c = generate_phantom(22, shape_ij=(48, 48), slice_thickness_mm=5.0)
    assert np.array_equal(a.volume.voxels, b.volume.voxels)
    assert np.array_equal(a.vertebra_labels, b.vertebra_labels)
    assert np.array_equal(a.volume.ijk_to_ras, b.volume.ijk_to_ras)
    assert a.params == b.params and a.level_ranges == b.level_ranges
    assert a.volume.voxels.shape != c.volume.voxels.shape or not np.array_equal(a.volume.voxels, c.volume.voxels)


def test_anatomy_does_not_depend_on_acquisition_arguments():
    thin = generate_phantom(2, shape_ij=(48, 48), slice_thickness_mm=2.0)
    thick = generate_phantom(2, shape_ij=(64, 64), slice_thickness_mm=5.0, noise_hu=5.0, extent="whole_body")
    assert thin.params["arms_down"] != thick.params["arms_down"]  # positioning differs, anatomy must not
    anatomy = ("vertebral_bodies_ras_z_mm", "hu", "kidney_centres_mm", "liver_tip_mm", "pelvis_mm", "transverse_process_mm")
    assert all(thin.params[key] == thick.params[key] for key in anatomy)


def test_small_volume_is_fast():
    generate_phantom(0, shape_ij=(32, 32), slice_thickness_mm=5.0)  # warm-up (imports, caches)
    start = time.perf_counter()
    ph = generate_phantom(1, shape_ij=(128, 128), slice_thickness_mm=5.0)
    elapsed = time.perf_counter() - start
    assert 40 <= ph.volume.num_slices <= 90
    assert elapsed < 2.0, f"128x128x{ph.volume.num_slices} phantom took {elapsed:.2f} s (budget 1 s)"


def test_volume_geometry_and_types(abdomen):
    vol = abdomen.volume
    assert vol.voxels.dtype == np.int16 and abdomen.vertebra_labels.dtype == np.uint8
    assert vol.voxels.shape == abdomen.vertebra_labels.shape
    assert vol.voxels.shape[1:] == (96, 96)
    assert vol.axial_axis == 2 and vol.superior_step == 1
    assert vol.slice_thickness == pytest.approx(5.0)
    assert vol.spacing[0] == pytest.approx(abdomen.params["pixel_spacing_mm"])
    assert 330.0 <= vol.spacing[0] * 96 <= 500.0  # field of view (mm)
    json.dumps(abdomen.params)  # JSON-serialisable


@pytest.mark.parametrize("seed", [3, 30, 31, 32])
def test_abdomen_contains_whole_l3_matching_the_label_map(seed):
    ph = generate_phantom(seed, shape_ij=(64, 64), slice_thickness_mm=5.0, extent="abdomen")
    n = ph.volume.num_slices
    assert 40 <= n <= 90
    assert ph.l3_range is not None
    k0, k1 = ph.l3_range
    assert 0 < k0 <= k1 < n - 1  # whole, not touching an edge
    assert ph.l3_range == l3_range_from_vertebra_map(ph.vertebra_labels)
    present = np.flatnonzero((ph.vertebra_labels == L3_LABEL).any(axis=(1, 2)))
    assert present[0] <= k0 <= k1 <= present[-1]  # the majority range lies inside the presence range
    # ordering along k (superior): L4 body below L3 body below L2 body
    assert _mid(ph.body_ranges, "L4") < _mid(ph.body_ranges, "L3") < _mid(ph.body_ranges, "L2")
    b0, b1 = ph.body_ranges["L3"]
    assert k0 <= b0 <= b1 <= k1 and (b1 - b0 + 1) * 5.0 >= 15.0
    for name, (r0, r1) in ph.level_ranges.items():
        rows = np.flatnonzero((ph.vertebra_labels == VERSE_IDS[name]).any(axis=(1, 2)))
        assert (rows[0], rows[-1]) == (r0, r1)
    assert "T11" in ph.level_ranges and "sacrum" in ph.level_ranges


def test_hu_ranges_are_plausible(abdomen):
    v = abdomen.volume.voxels
    assert v.min() >= -1024 and v.max() <= 3071
    corner = v[:, :6, :6]
    assert abs(float(np.median(corner)) + 1000.0) < 40.0  # air
    body = v > -500
    fat = ((v > -150) & (v < -50) & body).sum() / body.sum()
    soft = ((v > 0) & (v < 100) & body).sum() / body.sum()
    assert fat > 0.08 and soft > 0.2
    b0, b1 = abdomen.body_ranges["L3"]
    for k in range(b0, b1 + 1):
        spine = abdomen.vertebra_labels[k] > 0
        assert float(v[k][spine].max()) > 300.0  # bone at the spine
        assert float(np.median(v[k][body[k] & ~spine])) < 150.0


def test_ribs_only_on_thoracic_levels(whole_body):
    ph = whole_body
    assert ph.params["rib_bearing"] == [f"T{n}" for n in range(1, 13)]
    assert _lateral_bone(ph, _mid(ph.body_ranges, "T8")) >= 6
    for name in ("L2", "L3"):  # not L4: the iliac crests may reach its middle, as in real patients
        assert _lateral_bone(ph, _mid(ph.body_ranges, name)) == 0, name


def test_whole_body_has_neck_to_hips(whole_body):
    names = set(whole_body.level_ranges)
    assert {"C5", "T1", "T12", "L3", "L5", "sacrum"} <= names
    v = whole_body.volume.voxels
    # lungs (about -850 HU) in the chest, none at L3
    k_t6, k_l3 = _mid(whole_body.body_ranges, "T6"), _mid(whole_body.body_ranges, "L3")
    lung_t6 = ((v[k_t6] > -950) & (v[k_t6] < -700)).sum()
    assert lung_t6 > 200
    assert ((v[k_l3] > -950) & (v[k_l3] < -700)).sum() < lung_t6 / 5  # only bowel gas edges


def test_chest_is_a_negative():
    for seed in (5, 6):
        ph = generate_phantom(seed, shape_ij=(64, 64), slice_thickness_mm=5.0, extent="chest")
        assert ph.l3_range is None
        assert not (ph.vertebra_labels == L3_LABEL).any()
        assert "T6" in ph.level_ranges and "L3" not in ph.level_ranges


@pytest.mark.parametrize("seed", [40, 41, 42, 43])
def test_l3_edge_touches_an_edge(seed):
    ph = generate_phantom(seed, shape_ij=(64, 64), slice_thickness_mm=3.0, extent="l3_edge")
    n = ph.volume.num_slices
    assert ph.l3_range is not None
    k0, k1 = ph.l3_range
    if ph.params["l3_cut_by"] == "lower":
        assert k0 == 0 and k1 < n - 1 and "L4" not in ph.level_ranges
    else:
        assert ph.params["l3_cut_by"] == "upper"
        assert k1 == n - 1 and k0 > 0 and "L1" not in ph.level_ranges
    assert ph.l3_range == l3_range_from_vertebra_map(ph.vertebra_labels)


def test_both_l3_edges_occur():
    cuts = {generate_phantom(s, shape_ij=(32, 32), slice_thickness_mm=5.0, extent="l3_edge").params["l3_cut_by"] for s in range(40, 48)}
    assert cuts == {"lower", "upper"}


def test_superior_first_flips_slices_consistently():
    up = generate_phantom(9, shape_ij=(48, 48), slice_thickness_mm=5.0)
    down = generate_phantom(9, shape_ij=(48, 48), slice_thickness_mm=5.0, superior_first=True)
    n = up.volume.num_slices
    assert np.array_equal(down.volume.voxels, up.volume.voxels[::-1])
    assert np.array_equal(down.vertebra_labels, up.vertebra_labels[::-1])
    assert down.volume.superior_step == -1 and up.volume.superior_step == 1
    k0, k1 = up.l3_range
    assert down.l3_range == (n - 1 - k1, n - 1 - k0)
    assert down.l3_range == l3_range_from_vertebra_map(down.vertebra_labels)
    for k in (0, 7, n - 1):
        assert np.allclose(down.volume.slice_center_ras(n - 1 - k), up.volume.slice_center_ras(k))
    assert down.level_ranges["L1"] == (n - 1 - up.level_ranges["L1"][1], n - 1 - up.level_ranges["L1"][0])


def _labels_top_down(ph) -> list[int]:
    """Vertebra labels present, ordered from head to feet by the mean stored slice of their bodies."""
    order = []
    for name, (k0, k1) in ph.body_ranges.items():
        order.append(((k0 + k1) / 2, VERSE_IDS[name]))
    return [label for _, label in sorted(order, reverse=True)]


@pytest.mark.parametrize(
    ("variant", "ribs", "absent", "present"),
    [
        ("normal", 12, {25, 28}, {19, 24}),
        ("11_ribs", 11, {19, 25, 28}, {18, 20, 24}),
        ("13_ribs", 13, {25}, {19, 28, 24}),
        ("lumbarised", 12, {28}, {19, 24, 25}),
        ("sacralised", 12, {24, 25, 28}, {19, 23}),
    ],
)
def test_variants_keep_l3_third_below_last_rib(variant, ribs, absent, present):
    ph = generate_phantom(12, shape_ij=(96, 96), slice_thickness_mm=5.0, extent="whole_body", noise_hu=10.0, variant=variant)
    assert ph.params["variant"] == variant
    rib_bearing = ph.params["rib_bearing"]
    assert len(rib_bearing) == ribs and all(name.startswith("T") for name in rib_bearing)
    labels = set(np.unique(ph.vertebra_labels)) - {0}
    assert not labels & absent and present <= labels
    order = _labels_top_down(ph)
    last_rib = VERSE_IDS[rib_bearing[-1]]
    assert order[order.index(last_rib) + 3] == L3_LABEL
    assert order[order.index(last_rib) + 1] == VERSE_IDS["L1"]
    # the image agrees: lateral bone (ribs) at the last rib-bearing level, none at L3
    k_rib0, k_rib1 = ph.body_ranges[rib_bearing[-1]]
    assert max(_lateral_bone(ph, k, hu=350.0) for k in range(k_rib0, k_rib1 + 1)) > 0
    assert _lateral_bone(ph, _mid(ph.body_ranges, "L3"), hu=350.0) == 0


def test_random_extent_and_variant_are_drawn():
    extents = {generate_phantom(s, shape_ij=(16, 16), slice_thickness_mm=5.0, extent="random").params["extent"] for s in range(12)}
    assert len(extents) >= 3 and extents <= {"abdomen", "chest", "whole_body", "l3_edge"}
    thicknesses = {generate_phantom(s, shape_ij=(16, 16), extent="chest").volume.slice_thickness for s in range(6)}
    assert len(thicknesses) >= 2 and all(0.6 <= t <= 5.0 for t in thicknesses)


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        generate_phantom(0, extent="head")
    with pytest.raises(ValueError):
        generate_phantom(0, variant="12_ribs")
    with pytest.raises(ValueError):
        generate_phantom(0, slice_thickness_mm=0.0)


def test_write_phantom_case_round_trips(tmp_path, abdomen):
    paths = write_phantom_case(abdomen, tmp_path / "cases", "ph3")
    assert paths["ct"].name == "ph3.nii.gz" and paths["vertebrae"].name == "ph3_vertebrae.nii.gz"
    ct, lab = nib.load(paths["ct"]), nib.load(paths["vertebrae"])
    assert np.allclose(ct.affine, abdomen.volume.ijk_to_ras) and np.allclose(lab.affine, abdomen.volume.ijk_to_ras)
    assert np.array_equal(np.asanyarray(ct.dataobj).T, abdomen.volume.voxels)
    assert np.array_equal(np.asanyarray(lab.dataobj).T, abdomen.vertebra_labels)
    assert sorted(p.name for p in (tmp_path / "cases").iterdir()) == ["ph3.nii.gz", "ph3_vertebrae.nii.gz"]  # no temp files left
    with pytest.raises(FileExistsError):
        write_phantom_case(abdomen, tmp_path / "cases", "ph3")


def test_write_phantom_case_as_nrrd_reads_back_in_the_same_geometry(tmp_path, abdomen):
    from l3locator.reading import load_ct

    paths = write_phantom_case(abdomen, tmp_path, "ph3", fmt="nrrd")
    ct, lab = load_ct(paths["ct"]), load_ct(paths["vertebrae"])
    assert np.array_equal(ct.voxels, abdomen.volume.voxels) and np.allclose(ct.ijk_to_ras, abdomen.volume.ijk_to_ras)
    assert np.array_equal(lab.voxels, abdomen.vertebra_labels)
    with pytest.raises(ValueError):
        write_phantom_case(abdomen, tmp_path, "ph4", fmt="png")


# Summaries of three small phantoms (64 x 64, 5 mm), recorded from the generator: any change to the anatomy,
# the scanner model or the order of random draws shows up here as a visible diff. Tolerances allow only
# floating-point noise between platforms (a voxel rounding the other way), not a changed organ or level.
PINNED = [
    # seed, extent, shape, l3_range, L3 slices (any label), mean HU, fraction > 300 HU, L3 voxels, labelled voxels, pixel mm
    (3, "abdomen", (73, 64, 64), (36, 42), (35, 43), -572.344, 0.00846, 288, 2593, 6.805),
    (4, "whole_body", (140, 64, 64), (44, 50), (43, 51), -756.792, 0.01290, 220, 3149, 7.4312),
    (8, "l3_edge", (33, 64, 64), (30, 32), (29, 32), -662.456, 0.00256, 91, 1405, 6.9943),
]


@pytest.mark.parametrize("seed, extent, shape, l3_range, l3_slices, mean_hu, bone_fraction, l3_voxels, labelled, pixel_mm", PINNED)
def test_pinned_phantoms_are_unchanged(seed, extent, shape, l3_range, l3_slices, mean_hu, bone_fraction, l3_voxels, labelled, pixel_mm):
    ph = generate_phantom(seed, shape_ij=(64, 64), slice_thickness_mm=5.0, extent=extent)
    voxels = ph.volume.voxels
    assert voxels.shape == shape and ph.params["variant"] == "normal"
    assert ph.l3_range == l3_range and ph.level_ranges["L3"] == l3_slices
    assert ph.params["pixel_spacing_mm"] == pytest.approx(pixel_mm, abs=1e-3)
    assert float(voxels.mean()) == pytest.approx(mean_hu, abs=0.05)
    assert float((voxels > 300).mean()) == pytest.approx(bone_fraction, abs=2e-4)
    assert int((ph.vertebra_labels == L3_LABEL).sum()) == pytest.approx(l3_voxels, rel=0.02)
    assert int((ph.vertebra_labels > 0).sum()) == pytest.approx(labelled, rel=0.01)
