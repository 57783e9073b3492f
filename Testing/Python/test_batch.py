"""``L3Locator/L3LocatorBatch.py`` under plain Python, with Slicer's packages made unimportable.

A folder of mixed good and bad scans goes in; one CSV row per scan comes out, the exit status is
non-zero because of the bad ones, each L3 found has a markups file on the right slice, and the
rows are those ``l3locator batch`` writes for the same scans (one runner behind both).
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from l3locator import CTVolume
from l3locator.cli import main as cli_main
from l3locator.markups import read_markups_points
from l3locator.outputs import CSV_COLUMNS
from l3locator.phantoms import generate_phantom
from l3locator.phantoms.writing import write_dicom_series, write_nifti, write_nrrd
from l3locator.reading import load_ct
from test_pipeline import fixed_answer_model

ROOT = Path(__file__).resolve().parents[2]
BATCH_SCRIPT = ROOT / "L3Locator" / "L3LocatorBatch.py"


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
    model = fixed_answer_model(root / "always_l3.pt", l3=True)  # L3 always found: markups exercised deterministically
    output = root / "out" / "results.csv"
    markups = root / "out" / "markups"
    arguments = ["--input", str(scans), str(root / "missing.nrrd"), "--output", str(output),
                 "--model", str(model), "--markups-dir", str(markups), "--device", "cpu"]
    without_slicer = (  # the script must not need Slicer's packages: make them unimportable
        "import runpy, sys; sys.modules.update(slicer=None, vtk=None, qt=None); "
        f"sys.argv = [{str(BATCH_SCRIPT)!r}] + sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    )
    process = subprocess.run(
        [sys.executable, "-c", without_slicer, *arguments],
        cwd=root, capture_output=True, text=True, timeout=600, env={**os.environ, "PYTHONPATH": ""},
    )
    with open(output, newline="", encoding="utf-8") as handle:
        rows = {Path(row["input"]).name: row for row in csv.DictReader(handle)}
    return process, rows, scans, markups, model, root


def test_exit_status_is_non_zero_because_of_bad_scans(batch_run):
    process, rows, *_ = batch_run
    assert process.returncode == 1, process.stderr
    assert "3 of 7 scans done, 4 failed" in process.stderr
    assert "skipping" in process.stderr and "README.txt" in process.stderr


def test_one_row_per_scan_with_status_and_error(batch_run):
    _, rows, *_ = batch_run
    assert set(rows) == {"good_nifti.nii.gz", "good_nrrd.nrrd", "good_dicom", "corrupt.nii.gz", "not_ct.nrrd", "empty_folder", "missing.nrrd"}
    for name in ("good_nifti.nii.gz", "good_nrrd.nrrd", "good_dicom"):
        assert rows[name]["status"] == "ok" and rows[name]["error"] == "", rows[name]
        assert rows[name]["l3_found"] == "True"
    for name in ("corrupt.nii.gz", "not_ct.nrrd", "empty_folder", "missing.nrrd"):
        assert rows[name]["status"] == "error" and rows[name]["error"], rows[name]
        assert rows[name]["l3_slice_index"] == "" and rows[name]["markups_file"] == ""
    assert "corrupt.nii.gz" in rows["corrupt.nii.gz"]["error"]
    assert "Hounsfield" in rows["not_ct.nrrd"]["error"]
    assert "no such file" in rows["missing.nrrd"]["error"]


def test_markups_files_point_at_the_reported_slice(batch_run):
    _, rows, scans, markups, *_ = batch_run
    for name, scan in (("good_nifti.nii.gz", "good_nifti"), ("good_nrrd.nrrd", "good_nrrd"), ("good_dicom", "good_dicom")):
        row = rows[name]
        path = Path(row["markups_file"])
        # The scans and missing.nrrd share the folder above scans/: their folder is mirrored.
        assert path == markups / "scans" / f"{scan}_L3.mrk.json" and path.is_file()
        (position,) = read_markups_points(path)
        volume = load_ct(scans / name)
        index = int(row["l3_slice_index"])
        assert index == round((volume.num_slices - 1) / 2)  # every slice scored L3: the middle one
        assert volume.ijk_of_ras(position)[volume.axial_axis] == pytest.approx(index, abs=1e-3)
        assert [float(row[key]) for key in ("l3_r_mm", "l3_a_mm", "l3_s_mm")] == pytest.approx(position, abs=1e-2)
        assert int(row["num_slices"]) == volume.num_slices


def test_rows_are_those_of_l3locator_batch(batch_run, capsys):
    process, rows, scans, _, model, root = batch_run
    output = root / "cli" / "results.csv"
    code = cli_main(["batch", str(scans), str(root / "missing.nrrd"), "--output", str(output), "--model", str(model), "--device", "cpu"])
    assert code == process.returncode == 1
    with open(output, newline="", encoding="utf-8") as handle:
        cli_rows = {Path(row["input"]).name: row for row in csv.DictReader(handle)}
    assert list(cli_rows[next(iter(cli_rows))]) == list(CSV_COLUMNS)
    differ = {"seconds", "result_file", "markups_file", "qc_file"}  # timing, and where each shell writes which files
    assert {name: {k: v for k, v in row.items() if k not in differ} for name, row in cli_rows.items()} == {
        name: {k: v for k, v in row.items() if k not in differ} for name, row in rows.items()
    }
    notes = [line for line in capsys.readouterr().err.splitlines() if "skipping" in line]
    assert len(notes) == 1 and "README.txt" in notes[0]
