"""tools/real_training_cases.py: the real scans of ../shared as training cases (links, truth, patients)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from l3locator.training.dataset import discover_cases, label_truth

TOOL = Path(__file__).resolve().parents[2] / "tools" / "real_training_cases.py"


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("real_training_cases", TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_copies_are_cases_of_one_patient_with_the_scans_truth(tool, shared_data, tmp_path):
    assert tool.main([str(tmp_path), "--real-dir", str(shared_data), "--scan", "crop", "--scan", "cta", "--copies", "3"]) == 0
    discovery = discover_cases(tmp_path)
    assert discovery.unlabelled == []
    by_patient: dict[str, list] = {}
    for case in discovery.cases:
        by_patient.setdefault(case.patient, []).append(label_truth(case))
    assert sorted(by_patient) == ["real-crop", "real-cta"]
    assert [t.l3_range for t in by_patient["real-crop"]] == [(14, 35)] * 3  # L3 by the label map's majority rule
    assert [t.l3_range for t in by_patient["real-cta"]] == [None] * 3  # the written all-zero map: no L3 anywhere
    assert {t.num_slices for t in by_patient["real-cta"]} == {191}


def test_rerun_keeps_links_and_refuses_to_replace_another_file(tool, shared_data, tmp_path):
    args = [str(tmp_path), "--real-dir", str(shared_data), "--scan", "cta", "--copies", "1"]
    assert tool.main(args) == 0
    assert tool.main(args) == 0  # the same links again: nothing to do
    (tmp_path / "real-cta__copy00.nii.gz").unlink()
    (tmp_path / "real-cta__copy00.nii.gz").write_bytes(b"an annotator's own file")
    with pytest.raises(FileExistsError):
        tool.main(args)
    assert (tmp_path / "real-cta__copy00.nii.gz").read_bytes() == b"an annotator's own file"


def test_the_held_out_abdomen_is_not_offered(tool):
    assert "acrin" not in tool.SCANS
    assert all("acrin" not in ct for ct, _ in tool.SCANS.values())
