"""Real-shape vertebra templates for the phantoms (``l3locator.phantoms.vertebra_templates``).

A synthetic label mask with known body sizes checks the measurements; the real VerSe mask in
``../shared`` (when present) checks the levels it yields and a phantom painted from it.
"""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest

from l3locator.cli import main
from l3locator.phantoms import generate_phantom
from l3locator.phantoms.vertebra_templates import VertebraTemplates

VERSE_MASK = "verse004_vertebrae_T9-L5.nii.gz"
#: Synthetic mask: L2-L4 bodies (VerSe 21-23), 40 x 30 mm in plane, 1 mm voxels, RAS.
BODY_WIDTH_MM, BODY_DEPTH_MM = 40, 30


def write_box_spine(path, heights_mm=(26, 26, 26), disc_mm=8) -> None:
    """Three stacked boxes (bodies) with a rod behind each (a spinous process), labels 23, 22, 21 from the bottom."""
    mask = np.zeros((80, 90, 3 * 26 + 3 * disc_mm + 20), np.int16)  # [x right, y anterior, z superior]
    z = 10
    for label, height in zip((23, 22, 21), heights_mm):
        mask[20:20 + BODY_WIDTH_MM, 50:50 + BODY_DEPTH_MM, z:z + height] = label
        mask[38:42, 20:50, z + 5:z + height - 5] = label  # posterior process
        z += height + disc_mm
    nib.save(nib.Nifti1Image(mask, np.eye(4)), str(path))


def test_templates_measure_the_bodies_of_a_mask(tmp_path):
    write_box_spine(tmp_path / "boxes.nii.gz")
    templates = VertebraTemplates.from_mask(tmp_path / "boxes.nii.gz")
    assert sorted(templates.templates) == ["L2", "L3", "L4"]
    l3 = templates.for_vertebra("L3")
    assert l3.name == "L3"
    assert abs(2 * l3.body_half_width_mm - BODY_WIDTH_MM) <= 2.0
    assert abs(l3.endplate_slope) < 0.05
    assert 24 <= l3.body_height_mm <= 29
    assert l3.body.sum() < (l3.depth_mm > 0).sum()  # the process is not body
    assert templates.for_vertebra("L1") is None and templates.for_vertebra("L5") is None  # outside the mask's levels


def test_a_collapsed_level_is_replaced_by_the_one_below(tmp_path):
    write_box_spine(tmp_path / "boxes.nii.gz", heights_mm=(26, 14, 26))
    templates = VertebraTemplates.from_mask(tmp_path / "boxes.nii.gz")
    assert "L3" not in templates.templates
    assert templates.for_vertebra("L3").name == "L4"


def test_a_mask_without_vertebrae_is_refused(tmp_path):
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 8), np.int16), np.eye(4)), str(tmp_path / "empty.nii.gz"))
    with pytest.raises(ValueError, match="no vertebra labels"):
        VertebraTemplates.from_mask(tmp_path / "empty.nii.gz")


def test_the_phantoms_command_refuses_an_unreadable_template(tmp_path, capsys):
    assert main(["phantoms", str(tmp_path / "out"), "--count", "1", "--vertebra-template", str(tmp_path / "missing.nii.gz")]) == 2
    assert "--vertebra-template" in capsys.readouterr().err


@pytest.fixture(scope="module")
def verse_templates(shared_data) -> VertebraTemplates:
    return VertebraTemplates.from_mask(shared_data / VERSE_MASK)


def test_the_verse_mask_gives_T9_to_L5_without_its_wedged_L1(verse_templates):
    assert sorted(verse_templates.templates) == ["L2", "L3", "L4", "L5", "T10", "T11", "T12", "T9"]
    assert verse_templates.for_vertebra("L1").name == "L2"
    assert verse_templates.for_vertebra("T13").name == "T12" and verse_templates.for_vertebra("L6").name == "L5"
    assert verse_templates.for_vertebra("T8") is None
    widths = [verse_templates.for_vertebra(n).body_half_width_mm for n in ("T9", "T12", "L3")]
    assert widths == sorted(widths)  # bodies widen caudally


def test_a_templated_phantom_keeps_its_anatomy_and_labels(verse_templates):
    analytic = generate_phantom(11, shape_ij=(96, 96), slice_thickness_mm=5.0, extent="abdomen")
    templated = generate_phantom(11, shape_ij=(96, 96), slice_thickness_mm=5.0, extent="abdomen", vertebra_templates=verse_templates)
    assert templated.params["vertebral_bodies_ras_z_mm"] == analytic.params["vertebral_bodies_ras_z_mm"]
    assert templated.l3_range is not None
    assert abs(sum(templated.l3_range) / 2 - sum(analytic.l3_range) / 2) <= 1.0
    assert not np.array_equal(templated.volume.voxels, analytic.volume.voxels)
    for name in ("L2", "L3", "L4"):
        low, high = templated.body_ranges[name]
        middle = (low + high) // 2
        bone = templated.volume.voxels[middle][templated.vertebra_labels[middle] > 0]
        assert np.median(bone) > 100  # the painted template is bone where it is labelled


def test_dealt_shapes_are_a_permutation_of_L2_to_L4(tmp_path):
    write_box_spine(tmp_path / "boxes.nii.gz", heights_mm=(22, 26, 30))
    templates = VertebraTemplates.from_mask(tmp_path / "boxes.nii.gz")
    deals = [templates.with_shapes_dealt(np.random.default_rng(seed)) for seed in range(12)]
    for dealt in deals:
        assert sorted(dealt.for_vertebra(n).name for n in ("L2", "L3", "L4")) == ["L2", "L3", "L4"]
        assert dealt.templates is templates.templates  # the shapes are shared, not copied
    assert {dealt.for_vertebra("L3").name for dealt in deals} == {"L2", "L3", "L4"}  # L3 takes every shape
    assert templates.for_vertebra("L3").name == "L3"  # the original is left as it was


def test_shapes_are_not_dealt_when_a_level_is_missing(tmp_path):
    write_box_spine(tmp_path / "boxes.nii.gz")
    templates = VertebraTemplates.from_mask(tmp_path / "boxes.nii.gz")
    assert templates.with_shapes_dealt(np.random.default_rng(0), ("L3", "L4", "L5")) is templates  # L5 is not in the mask


def test_dealing_shapes_changes_the_spine_and_nothing_else(verse_templates):
    kwargs = dict(shape_ij=(96, 96), slice_thickness_mm=5.0, extent="abdomen", vertebra_templates=verse_templates)
    own = generate_phantom(11, **kwargs)
    assert own.params == generate_phantom(11, deal_shapes_rate=0.0, **kwargs).params
    dealt = next(p for seed in range(11, 40) if (p := generate_phantom(seed, deal_shapes_rate=1.0, **kwargs)).params["vertebra_shapes_dealt"]["L3"] != "L3")
    mine = generate_phantom(dealt.params["seed"], **kwargs)
    assert sorted(dealt.params["vertebra_shapes_dealt"].values()) == ["L2", "L3", "L4"]
    assert {k: v for k, v in dealt.params.items() if k != "vertebra_shapes_dealt"} == mine.params  # same patient and scan
    assert dealt.l3_range == mine.l3_range
    bone = (dealt.vertebra_labels > 0) | (mine.vertebra_labels > 0)
    differs = dealt.volume.voxels != mine.volume.voxels
    assert differs[bone].mean() > 20 * differs[~bone].mean()  # the vertebrae (and their partial volume) changed
    above_l1 = mine.body_ranges["T12"][1] + 1
    assert differs.any() and not differs[above_l1:].any()  # the thorax above is untouched


def test_the_phantoms_command_refuses_dealing_without_a_template(tmp_path, capsys):
    assert main(["phantoms", str(tmp_path / "out"), "--count", "1", "--deal-shapes", "0.5"]) == 2
    assert "--deal-shapes" in capsys.readouterr().err


def test_a_level_cut_by_the_mask_edge_is_left_out(tmp_path):
    write_box_spine(tmp_path / "boxes.nii.gz")
    image = nib.load(tmp_path / "boxes.nii.gz")
    cut = np.asarray(image.dataobj)[:, :, :90]  # through the top body (L2, z 78-103)
    nib.save(nib.Nifti1Image(cut, np.eye(4)), str(tmp_path / "cut.nii.gz"))
    assert sorted(VertebraTemplates.from_mask(tmp_path / "cut.nii.gz").templates) == ["L3", "L4"]


def test_a_spine_drawn_from_two_patients_takes_each_level_from_one_that_holds_it(tmp_path):
    write_box_spine(tmp_path / "short.nii.gz", heights_mm=(22, 22, 22))
    write_box_spine(tmp_path / "tall.nii.gz", heights_mm=(30, 30, 30))
    image = nib.load(tmp_path / "tall.nii.gz")
    nib.save(nib.Nifti1Image(np.where(np.asarray(image.dataobj) == 22, 0, np.asarray(image.dataobj)).astype(np.int16), np.eye(4)),
             str(tmp_path / "tall_without_L3.nii.gz"))
    short, tall = VertebraTemplates.from_mask(tmp_path / "short.nii.gz"), VertebraTemplates.from_mask(tmp_path / "tall_without_L3.nii.gz")
    spines = [VertebraTemplates.drawn_from([short, tall], np.random.default_rng(seed)) for seed in range(16)]
    for name in ("L2", "L4"):
        assert {spine.templates[name] is short.templates[name] for spine in spines} == {True, False}  # both patients
        assert all(spine.templates[name] is short.templates[name] or spine.templates[name] is tall.templates[name] for spine in spines)
    assert all(spine.templates["L3"] is short.templates["L3"] for spine in spines)  # only one holds L3
    assert VertebraTemplates.drawn_from([short], np.random.default_rng(0)) is short


def test_the_phantoms_command_takes_several_masks(tmp_path, shared_data):
    write_box_spine(tmp_path / "boxes.nii.gz")
    out = tmp_path / "out"
    assert main(["phantoms", str(out), "--count", "2", "--size", "64", "--extent", "abdomen", "--vertebra-template",
                 str(shared_data / VERSE_MASK), "--vertebra-template", str(tmp_path / "boxes.nii.gz")]) == 0
    assert len(list(out.glob("phantom*_vertebrae.nii.gz"))) == 2
