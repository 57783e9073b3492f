"""``l3locator find/batch --body-composition``: the JSON object, the label map and picture written
with ``--output-dir``, the batch CSV columns, and bad options (exit status 2, one line, no scan
read). Models here give a fixed answer (L3 at the middle slice, or never), so a phantom cut to
have its L3 centre in the middle is measured where its tissue truth is known."""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from PIL import Image

import l3locator.pipeline
from l3locator.body_composition import TISSUES, measure_labels
from l3locator.cli import main
from l3locator.modelfile import DEFAULT_MODEL_PATH
from l3locator.outputs import BODY_COMPOSITION_COLUMNS, CSV_COLUMNS
from l3locator.phantoms import generate_phantom
from l3locator.phantoms.tissues import true_tissue_areas_cm2
from l3locator.phantoms.writing import write_nifti
from l3locator.volume import CTVolume
from test_pipeline import body_volume, strict_json


@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory):
    """A phantom cut to 9 slices around its L3 centre (the middle slice), as NIfTI, with the true
    tissue areas (cm^2) of that slice."""
    phantom = generate_phantom(1000006, shape_ij=(256, 256), slice_thickness_mm=5.0, extent="abdomen")
    centre = sum(phantom.l3_range) // 2
    first = centre - 4
    to_first = np.eye(4)
    to_first[2, 3] = first
    cut = CTVolume(phantom.volume.voxels[first : centre + 5], phantom.volume.ijk_to_ras @ to_first, source="phantom")
    path = write_nifti(cut, tmp_path_factory.mktemp("scan") / "phantom.nii.gz")
    return path, true_tissue_areas_cm2(phantom, centre), phantom.volume.ijk_to_ras @ np.append([0.0, 0.0, centre], 1.0)


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The paths the pipeline reads from here on."""
    seen: list[str] = []
    original = l3locator.pipeline.load_ct
    monkeypatch.setattr(l3locator.pipeline, "load_ct", lambda path, *a, **kw: seen.append(str(path)) or original(path, *a, **kw))
    return seen


def printed_json(capsys) -> dict:
    return strict_json(capsys.readouterr().out)


def test_find_measures_body_composition_at_l3_and_writes_the_label_map_and_picture(phantom_case, always_l3, tmp_path, capsys):
    scan, truth, centre_ras = phantom_case
    out = tmp_path / "out"
    assert main(["find", str(scan), "--model", str(always_l3), "--json", "--body-composition", "--height-m", "1.7", "--output-dir", str(out)]) == 0
    printed = printed_json(capsys)
    measured = printed["body_composition"]
    assert set(measured) == {"slice_index", "slices_used", "areas_cm2", "mean_hu", "smi_cm2_per_m2", "height_m", "method", "hu_ranges", "warnings"}
    assert measured["slice_index"] == printed["l3_slice_index"] == 4 and measured["slices_used"] == [4]
    areas = measured["areas_cm2"]
    assert areas["muscle"] == pytest.approx(truth["muscle"], rel=0.05)  # the issue's done-when bounds
    assert areas["vat"] == pytest.approx(truth["vat"], rel=0.10) and areas["sat"] == pytest.approx(truth["sat"], rel=0.10)
    assert measured["smi_cm2_per_m2"] == pytest.approx(areas["muscle"] / 1.7**2, abs=0.01) and measured["height_m"] == 1.7
    assert measured["hu_ranges"]["muscle"] == [-29.0, 150.0] and 20.0 < measured["mean_hu"]["muscle"] < 80.0
    outputs = printed["outputs"]
    assert Path(outputs["tissues"]) == out / "phantom_L3_tissues.nii.gz" and Path(outputs["bodycomp"]) == out / "phantom_L3_bodycomp.png"
    assert strict_json(Path(outputs["result"]).read_text())["body_composition"] == measured
    image = nib.load(outputs["tissues"])
    labels = np.asarray(image.dataobj)
    assert labels.shape == (256, 256, 1) and labels.dtype == np.uint8 and set(np.unique(labels)) == {0, 1, 2, 3, 4}
    assert np.allclose(image.affine @ [0.0, 0.0, 0.0, 1.0], centre_ras)  # the CT slice's place, so Slicer overlays it
    ct = np.asarray(nib.load(scan).dataobj)[:, :, 4]
    spacing = tuple(float(v) for v in image.header.get_zooms()[:2])
    file_areas, _, _ = measure_labels(ct.T, labels[:, :, 0].T, spacing[::-1])
    assert {name: round(file_areas[name], 2) for name in TISSUES} == pytest.approx(areas, abs=0.011)
    with Image.open(outputs["bodycomp"]) as picture:
        assert picture.width > 800 and picture.height > 500


def test_body_composition_is_null_with_a_reason_when_no_l3_is_found(phantom_case, always_l3, never_l3, tmp_path, capsys):
    scan, _, _ = phantom_case
    out = tmp_path / "out"
    assert main(["find", str(scan), "--model", str(always_l3), "--body-composition", "--output-dir", str(out)]) == 0
    assert (out / "phantom_L3_tissues.nii.gz").is_file() and (out / "phantom_L3_bodycomp.png").is_file()
    capsys.readouterr()
    assert main(["find", str(scan), "--model", str(never_l3), "--json", "--body-composition", "--output-dir", str(out)]) == 0
    printed = printed_json(capsys)
    assert printed["body_composition"] is None and any("no L3 found" in warning for warning in printed["warnings"])
    assert "tissues" not in printed["outputs"] and "bodycomp" not in printed["outputs"]
    assert not (out / "phantom_L3_tissues.nii.gz").exists() and not (out / "phantom_L3_bodycomp.png").exists()  # no stale files


def test_the_summary_line_gives_the_areas(phantom_case, always_l3, capsys):
    scan, truth, _ = phantom_case
    assert main(["find", str(scan), "--model", str(always_l3), "--body-composition", "--height-m", "1.7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    measured = [line for line in lines if "body composition at slice 4: muscle " in line]
    assert len(measured) == 1 and "SMI " in measured[0]
    muscle = float(measured[0].split("muscle ")[1].split(" cm2")[0])
    assert muscle == pytest.approx(truth["muscle"], rel=0.05)


def test_without_the_option_nothing_is_measured(phantom_case, always_l3, tmp_path, capsys):
    scan, _, _ = phantom_case
    assert main(["find", str(scan), "--model", str(always_l3), "--json", "--output-dir", str(tmp_path)]) == 0
    printed = printed_json(capsys)
    assert "body_composition" not in printed and set(printed["outputs"]) == {"markups", "qc", "result"}


def test_batch_adds_the_body_composition_columns(phantom_case, always_l3, tmp_path, capsys):
    scan, truth, _ = phantom_case
    other = write_nifti(body_volume(slices=12), tmp_path / "scans" / "body.nii.gz")
    output = tmp_path / "results.csv"
    code = main(["batch", str(scan), str(other), "--model", str(always_l3), "--output", str(output), "--body-composition",
                 "--bc-half-width-mm", "5", "--output-dir", str(tmp_path / "out")])
    assert code == 0
    with open(output, newline="", encoding="utf-8") as handle:
        rows = {Path(row["input"]).name: row for row in csv.DictReader(handle)}
    assert list(rows["phantom.nii.gz"]) == list(CSV_COLUMNS) and set(BODY_COMPOSITION_COLUMNS) <= set(CSV_COLUMNS)
    phantom = rows["phantom.nii.gz"]
    assert float(phantom["muscle_cm2"]) == pytest.approx(truth["muscle"], rel=0.06)  # the mean of slices 3-5
    assert all(phantom[column] != "" for column in ("imat_cm2", "vat_cm2", "sat_cm2", "muscle_mean_hu"))
    assert phantom["smi_cm2_per_m2"] == "" and Path(phantom["tissues_file"]).is_file() and Path(phantom["bodycomp_file"]).is_file()
    assert float(rows["body.nii.gz"]["muscle_cm2"]) >= 0.0  # measured, whatever a block of soft tissue gives
    output_plain = tmp_path / "plain.csv"
    assert main(["batch", str(scan), "--model", str(always_l3), "--output", str(output_plain)]) == 0
    with open(output_plain, newline="", encoding="utf-8") as handle:
        plain = next(csv.DictReader(handle))
    assert all(plain[column] == "" for column in BODY_COMPOSITION_COLUMNS)


@pytest.mark.parametrize("command", ["find", "batch"])
@pytest.mark.parametrize("options, needle", [
    (["--body-composition", "--height-m", "172"], "centimetres"),
    (["--body-composition", "--height-m", "tall"], "--height-m tall"),
    (["--body-composition", "--height-m", "-1.7"], "--height-m -1.7"),
    (["--body-composition", "--bc-half-width-mm", "-5"], "--bc-half-width-mm -5"),
    (["--body-composition", "--bc-half-width-mm", "500"], "--bc-half-width-mm 500"),
    (["--height-m", "1.7"], "only to --body-composition"),
])
def test_bad_body_composition_options_exit_2_with_one_line_before_any_scan_is_read(phantom_case, always_l3, tmp_path, capsys, reads, command,
                                                                                  options, needle):
    scan, _, _ = phantom_case
    where = ["--output", str(tmp_path / "r.csv")] if command == "batch" else []
    assert main([command, str(scan), "--model", str(always_l3), *where, *options]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("l3locator: error: ") and needle in lines[0], lines
    assert reads == [] and not (tmp_path / "r.csv").exists()


@pytest.mark.skipif(not DEFAULT_MODEL_PATH.is_file(), reason="shipped model not present")
def test_done_when_the_shipped_model_on_a_phantom(tmp_path, capsys):
    """The issue's done-when, as a user runs it: ``find scan --body-composition --output-dir``."""
    phantom = generate_phantom(1000006, shape_ij=(256, 256), slice_thickness_mm=5.0, extent="abdomen")
    scan = write_nifti(phantom.volume, tmp_path / "phantom1000006.nii.gz")
    assert main(["find", str(scan), "--json", "--body-composition", "--output-dir", str(tmp_path / "out")]) == 0
    printed = printed_json(capsys)
    first, last = phantom.l3_range
    assert first <= printed["l3_slice_index"] <= last
    truth = true_tissue_areas_cm2(phantom, printed["l3_slice_index"])
    areas = printed["body_composition"]["areas_cm2"]
    assert areas["muscle"] == pytest.approx(truth["muscle"], rel=0.05)
    assert areas["vat"] == pytest.approx(truth["vat"], rel=0.10) and areas["sat"] == pytest.approx(truth["sat"], rel=0.10)
    assert Path(printed["outputs"]["bodycomp"]).is_file() and Path(printed["outputs"]["tissues"]).is_file()
