"""find_l3 end to end (structure and geometry) and the CLI contract.

Accuracy needs a trained model and is tested with the training code; here a seeded untrained
model gives arbitrary but fixed probabilities, and models with a fixed answer (every slice L3,
or none) exercise both outcomes deterministically: tests check shapes, keys, geometry, outputs
and errors.
"""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from l3locator.cli import main
from l3locator.errors import InputError
from l3locator.markups import read_markups_points
from l3locator.modelfile import L3Model
from l3locator.outputs import CSV_COLUMNS
from l3locator.phantoms.writing import write_nifti
from l3locator.pipeline import find_l3, result_from_probabilities
from l3locator.preprocessing import PreprocessingConfig
from l3locator.reading import check_volume
from l3locator.volume import CTVolume

CONTRACT_KEYS = {
    "input", "l3_found", "l3_slice_index", "l3_slice_range", "l3_position_ras",
    "confidence", "flags", "slice_probabilities", "model", "seconds",
}


def body_volume(slices: int = 20, thickness: float = 3.0, pixel_mm: float = 8.0) -> CTVolume:
    """An ellipse of soft tissue with a bone disc, in air; LPS-like matrix (negative x, y); 8 mm pixels by
    default, so the slice spans a body-sized 384 x 320 mm (a smaller one is flagged ``small_field_of_view``)."""
    yy, xx = np.mgrid[:48, :40]
    body = ((yy - 24) / 20.0) ** 2 + ((xx - 20) / 17.0) ** 2 < 1
    spine = ((yy - 34) ** 2 + (xx - 20) ** 2) < 16
    slice_ = np.where(body, 40, -1000).astype(np.int16)
    slice_[spine] = 700
    voxels = np.repeat(slice_[None], slices, axis=0)
    matrix = np.array([[-pixel_mm, 0, 0, 10.0], [0, -pixel_mm, 0, 20.0], [0, 0, thickness, -300.0], [0, 0, 0, 1]])
    return CTVolume(voxels, matrix, source="body")


def fixed_answer_model(path, l3: bool):
    """A model file whose network gives every slice the same answer (zero weights, a large bias
    for or against L3): with ``l3`` L3 is found at the middle slice of any scan, without never."""
    model = L3Model.new("resnet18", PreprocessingConfig(input_size=32))
    with torch.no_grad():
        model.network.fc.weight.zero_()
        model.network.fc.bias.copy_(torch.tensor([-10.0, 10.0] if l3 else [10.0, -10.0]))
    return model.save(path)


def strict_json(text: str):
    """``json.loads`` that refuses NaN and infinities, as every JSON reader but Python's does."""
    return json.loads(text, parse_constant=lambda name: pytest.fail(f"non-standard JSON constant {name}"))


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    return L3Model.new("resnet18", PreprocessingConfig(input_size=32)).save(path)


@pytest.fixture(scope="module")
def scan_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("scan") / "body.nii.gz"
    write_nifti(body_volume(), path)
    return path


def test_find_l3_returns_one_probability_per_slice(model_file):
    volume = body_volume(slices=17)
    seen = []
    result = find_l3(volume, model_file, batch_size=4, progress=lambda done, total: seen.append((done, total)))
    assert len(result.slice_probabilities) == 17
    assert all(0.0 <= p <= 1.0 for p in result.slice_probabilities)
    assert seen[-1] == (17, 17) and len(seen) == 5
    assert CONTRACT_KEYS <= set(result.to_dict())
    json.dumps(result.to_dict())  # JSON-serialisable


def test_find_l3_uses_the_rule_stored_with_the_model_unless_given_one(model_file):
    from dataclasses import replace

    from l3locator.locate import LocateRule
    from l3locator.modelfile import load_model

    volume = body_volume(slices=17)  # identical slices: one flat probability for all
    model = load_model(model_file)
    p = find_l3(volume, model, exhaustive=True).slice_probabilities[0]
    below, above = LocateRule(threshold=max(0.0, p - 0.01), min_mass_mm=0.0), LocateRule(threshold=min(1.0, p + 0.01))
    assert find_l3(volume, replace(model, locate_rule=below), exhaustive=True).l3_found
    assert not find_l3(volume, replace(model, locate_rule=above), exhaustive=True).l3_found
    assert find_l3(volume, replace(model, locate_rule=above), rule=below, exhaustive=True).l3_found
    assert not find_l3(volume, replace(model, locate_rule=above)).l3_found  # the fast path too


def test_found_position_is_the_centre_of_the_found_slice():
    volume = body_volume(slices=30)
    probabilities = np.full(30, 0.01)
    probabilities[10:19] = 0.95
    result = result_from_probabilities(volume, probabilities, model_name="m", seconds=0.1)
    assert result.l3_found and result.l3_slice_index == 14
    ijk = volume.ijk_of_ras(result.l3_position_ras)
    assert ijk[2] == pytest.approx(14) and ijk[0] == pytest.approx(19.5) and ijk[1] == pytest.approx(23.5)


def test_no_evidence_is_reported_as_not_found():
    volume = body_volume(slices=30)
    result = result_from_probabilities(volume, np.full(30, 0.05), model_name="m", seconds=0.1)
    assert not result.l3_found and result.flags == ["no_l3_found"]
    assert result.l3_position_ras is None and result.to_dict()["l3_slice_range"] is None


def test_a_crop_sized_field_of_view_is_flagged_found_or_not():
    probabilities = np.full(30, 0.01)
    probabilities[10:19] = 0.95
    body = result_from_probabilities(body_volume(slices=30), probabilities, model_name="m", seconds=0.1)
    assert body.l3_found and "small_field_of_view" not in body.flags and body.confidence > 0.6
    # 40 x 48 pixels of 4.9 mm: 196 mm across, just under the limit; 5 mm pixels: 200 mm, not flagged.
    crop = result_from_probabilities(body_volume(slices=30, pixel_mm=4.9), probabilities, model_name="m", seconds=0.1)
    assert crop.l3_slice_index == body.l3_slice_index and crop.flags[-2:] == ["small_field_of_view", "low_confidence"]
    assert crop.confidence == pytest.approx(min(body.confidence / 2, 0.3))
    edge = result_from_probabilities(body_volume(slices=30, pixel_mm=5.0), probabilities, model_name="m", seconds=0.1)
    assert "small_field_of_view" not in edge.flags
    nothing = result_from_probabilities(body_volume(slices=30, pixel_mm=2.0), np.full(30, 0.05), model_name="m", seconds=0.1)
    assert nothing.flags == ["no_l3_found", "small_field_of_view"] and nothing.confidence == 0.0


def test_slices_without_an_image_are_flagged_and_named():
    volume = body_volume(slices=30)
    assert volume.blank_slices().tolist() == [] and "blank_slices" not in result_from_probabilities(
        volume, np.full(30, 0.05), model_name="m", seconds=0.1).flags
    volume.voxels[5] = -1000  # a slice of air padding
    volume.voxels[20:] = volume.voxels[20:, :1, :1]  # a slab of one value each, as NaN replaced by the minimum
    assert volume.blank_slices().tolist() == [5, *range(20, 30)]
    result = result_from_probabilities(volume, np.full(30, 0.05), model_name="m", seconds=0.1)
    assert result.flags == ["no_l3_found", "blank_slices"]
    assert result.warnings[-1] == "11 of 30 slices hold no image (one value throughout): slices 5, 20-29"


def test_a_slice_flat_on_the_sampling_grid_but_not_blank_is_not_flagged():
    volume = body_volume(slices=4)
    volume.voxels[2] = -1000
    volume.voxels[2, 3, 5] = 200  # off the every-8th-row-and-column grid
    assert volume.blank_slices().tolist() == []


def test_a_nan_slab_read_from_a_file_is_flagged_found_or_not(tmp_path):
    voxels = body_volume(slices=30).voxels.astype(np.float32)
    voxels[18:] = np.nan  # a resampled scan padded with NaN beyond its data
    path = write_nifti(CTVolume(voxels, body_volume().ijk_to_ras, source="padded"), tmp_path / "padded.nii.gz")
    always, never = fixed_answer_model(tmp_path / "always.pt", True), fixed_answer_model(tmp_path / "never.pt", False)
    missed = find_l3(path, never)
    assert missed.flags == ["no_l3_found", "blank_slices"]
    assert "NaN" in missed.warnings[0] and missed.warnings[-1].endswith("slices 18-29")
    found = find_l3(path, always)
    assert found.l3_found and "blank_slices" in found.flags


def test_single_slice_and_non_ct_are_rejected():
    with pytest.raises(InputError, match="only 1 axial slice"):
        check_volume(body_volume(slices=1))
    mr_like = CTVolume(np.full((5, 8, 8), 300, np.int16), np.eye(4), source="mr", metadata={"looks_like_ct": False})
    with pytest.raises(InputError, match="do not look like CT"):
        check_volume(mr_like)


def test_find_l3_result_is_complete_input_and_seconds_included(model_file, scan_file):
    result = find_l3(str(scan_file), model_file)
    assert result.input == str(scan_file) and result.seconds > 0
    volume = body_volume()
    volume.metadata["warnings"] = ["slice spacing fixed"]
    from_volume = find_l3(volume, model_file)
    assert from_volume.input == "body" and from_volume.warnings == ["slice spacing fixed"]
    assert from_volume.to_dict()["warnings"] == ["slice spacing fixed"]


def test_cli_find_json_and_outputs(scan_file, tmp_path, capsys):
    always, never = fixed_answer_model(tmp_path / "always.pt", True), fixed_answer_model(tmp_path / "never.pt", False)
    out = tmp_path / "out"
    code = main(["find", str(scan_file), "--model", str(always), "--json", "--output-dir", str(out)])
    assert code == 0
    printed = strict_json(capsys.readouterr().out)
    assert CONTRACT_KEYS <= set(printed) and printed["warnings"] == []
    assert len(printed["slice_probabilities"]) == 20
    assert printed["l3_found"] and printed["l3_slice_index"] == 10  # every slice L3: the middle one
    outputs = printed["outputs"]
    assert set(outputs) == {"result", "markups", "qc"}
    assert outputs["result"] == str(out / "body_L3.json")
    assert strict_json(open(outputs["result"]).read())["input"] == printed["input"] == str(scan_file)
    assert Image.open(outputs["qc"]).size[0] > 100
    np.testing.assert_allclose(read_markups_points(outputs["markups"])[0], printed["l3_position_ras"])

    # A new run for the same scan replaces its files together: no stale markups beside "no L3".
    assert main(["find", str(scan_file), "--model", str(never), "--json", "--output-dir", str(out)]) == 0
    again = strict_json(capsys.readouterr().out)
    assert not again["l3_found"] and set(again["outputs"]) == {"result", "qc"}
    assert not strict_json((out / "body_L3.json").read_text())["l3_found"]
    assert sorted(p.name for p in out.iterdir()) == ["body_L3.json", "body_L3_qc.png"]


def test_cli_bad_input_exits_2_with_one_line(model_file, tmp_path, capsys):
    code = main(["find", str(tmp_path / "missing.nii.gz"), "--model", str(model_file)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("l3locator: error:") and err.count("\n") == 1


def test_cli_corrupt_model_exits_2(scan_file, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert main(["find", str(scan_file), "--model", str(bad)]) == 2
    assert "bad.pt" in capsys.readouterr().err


def test_cli_batch_reports_bad_scans_in_their_row(model_file, scan_file, tmp_path, capsys):
    bad = tmp_path / "notes.txt"
    bad.write_text("not a scan")
    output = tmp_path / "results.csv"
    code = main(["batch", str(scan_file), str(bad), str(tmp_path / "gone.nii"), "--model", str(model_file), "--output", str(output)])
    assert code == 1
    lines = output.read_text().splitlines()
    assert lines[0].split(",") == list(CSV_COLUMNS) and len(lines) == 4
    assert [line.split(",")[1] for line in lines[1:]] == ["ok", "error", "error"]
    assert "unsupported file type" in lines[2]


def test_demo_writes_into_a_new_temporary_folder_not_the_current_one(tmp_path, monkeypatch, capsys):
    from l3locator import demo

    for folder in ("cwd", "temporary"):
        (tmp_path / folder).mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "temporary"))
    assert demo.main(["--model", str(fixed_answer_model(tmp_path / "always.pt", True))]) == 0
    printed = capsys.readouterr().out
    assert list((tmp_path / "cwd").iterdir()) == []
    (folder,) = (tmp_path / "temporary").iterdir()
    assert folder.name.startswith("l3locator-demo-") and str(folder) in printed
    assert {p.name for p in folder.iterdir()} >= {"phantom7.nii.gz", "phantom7_L3.json", "phantom7_L3.mrk.json", "phantom7_L3_qc.png"}
