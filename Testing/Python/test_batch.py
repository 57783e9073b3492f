"""``L3Locator/L3LocatorBatch.py`` under plain Python with the ``slicer-core`` wheel.

A folder of mixed good and bad scans goes in; one CSV row per scan comes out, the exit status is
non-zero because of the bad ones, and each L3 found has a markups file on the right slice.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the 'slicer' package here is not slicer-core", allow_module_level=True)

import torch  # noqa: E402

from l3locator import CTVolume, L3Model, PreprocessingConfig  # noqa: E402
from l3locator.markups import read_markups_points  # noqa: E402
from l3locator.phantom import generate_phantom  # noqa: E402
from l3locator.reading import load_ct  # noqa: E402
from l3locator.writing import write_dicom_series, write_nifti, write_nrrd  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
BATCH_SCRIPT = ROOT / "L3Locator" / "L3LocatorBatch.py"


def always_l3_model(path: Path) -> Path:
    """A model that calls every slice L3 (zero weights, large L3 bias): L3 is then always found,
    at the middle slice, so the markups output is exercised deterministically."""
    model = L3Model.new("resnet18", PreprocessingConfig(input_size=32))
    with torch.no_grad():
        model.network.fc.weight.zero_()
        model.network.fc.bias.copy_(torch.tensor([-10.0, 10.0]))
    return model.save(path)


@pytest.fixture(scope="module")
def batch_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("batch")
    scans = root / "scans"
    scans.mkdir()
    volume = generate_phantom(3, shape_ij=(48, 48), slice_thickness_mm=5.0, extent="abdomen").volume
    write_nifti(volume, scans / "good_nifti.nii.gz")
    write_nrrd(CTVolume(volume.voxels[:30], volume.ijk_to_ras, "short"), scans / "good_nrrd.nrrd")
    write_dicom_series(volume, scans / "good_dicom")
    (scans / "corrupt.nii.gz").write_bytes(b"this is not a NIfTI file")
    mr_like = np.clip(volume.voxels.astype(np.int32) + 1024, 0, None).astype(np.int16)  # no air below -500
    write_nrrd(CTVolume(mr_like, volume.ijk_to_ras, "mr"), scans / "not_ct.nrrd")
    (scans / "empty_folder").mkdir()
    (scans / "README.txt").write_text("not a scan\n")
    model = always_l3_model(root / "always_l3.pt")
    output = root / "out" / "results.csv"
    markups = root / "out" / "markups"
    process = subprocess.run(
        [sys.executable, str(BATCH_SCRIPT), "--input", str(scans), str(root / "missing.nrrd"), "--output", str(output),
         "--model", str(model), "--markups-dir", str(markups), "--device", "cpu"],
        cwd=root, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""},
    )
    with open(output, newline="", encoding="utf-8") as handle:
        rows = {Path(row["input"]).name: row for row in csv.DictReader(handle)}
    return process, rows, scans, markups


def test_exit_status_is_non_zero_because_of_bad_scans(batch_run):
    process, rows, _, _ = batch_run
    assert process.returncode == 1, process.stderr
    assert "3 of 7 scans done, 4 failed" in process.stderr
    assert "skipping" in process.stderr and "README.txt" in process.stderr


def test_one_row_per_scan_with_status_and_error(batch_run):
    _, rows, _, _ = batch_run
    assert set(rows) == {"good_nifti.nii.gz", "good_nrrd.nrrd", "good_dicom", "corrupt.nii.gz", "not_ct.nrrd", "empty_folder", "missing.nrrd"}
    for name in ("good_nifti.nii.gz", "good_nrrd.nrrd", "good_dicom"):
        assert rows[name]["status"] == "ok" and rows[name]["error"] == "", rows[name]
        assert rows[name]["l3_found"] == "True"
    for name in ("corrupt.nii.gz", "not_ct.nrrd", "empty_folder", "missing.nrrd"):
        assert rows[name]["status"] == "error" and rows[name]["error"], rows[name]
        assert rows[name]["l3_slice_index"] == "" and rows[name]["markups"] == ""
    assert "Slicer could not read" in rows["corrupt.nii.gz"]["error"]
    assert "Hounsfield" in rows["not_ct.nrrd"]["error"]
    assert "no such file" in rows["missing.nrrd"]["error"]


def test_markups_files_point_at_the_reported_slice(batch_run):
    _, rows, scans, markups = batch_run
    for name, scan in (("good_nifti.nii.gz", "good_nifti"), ("good_nrrd.nrrd", "good_nrrd"), ("good_dicom", "good_dicom")):
        row = rows[name]
        path = Path(row["markups"])
        assert path == markups / f"{scan}_L3.mrk.json" and path.is_file()
        (position,) = read_markups_points(path)
        volume = load_ct(scans / name)
        index = int(row["l3_slice_index"])
        assert index == round((volume.num_slices - 1) / 2)  # every slice scored L3: the middle one
        assert volume.ijk_of_ras(position)[volume.axial_axis] == pytest.approx(index, abs=1e-3)
        assert [float(row[key]) for key in ("l3_r_mm", "l3_a_mm", "l3_s_mm")] == pytest.approx(position, abs=1e-2)
        assert int(row["num_slices"]) == volume.num_slices
