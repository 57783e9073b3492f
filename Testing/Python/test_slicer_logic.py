"""The Slicer modules' Qt-free parts on a real MRML scene (the ``slicer-core`` wheel).

``L3LocatorLib`` (volumes, the L3 point, the probability plot, the export of a case and its
files, models) and ``L3LocatorTrainingLib`` (the run, its progress, the folder summary, the
report), and the module logic that composes them. Models here give a fixed answer (zero last
layer, chosen class logits), so every check is on a known answer. Geometry is checked with the
volume node's own RAS → IJK matrix, not with the core's maths.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the 'slicer' package here is not slicer-core", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
for folder in (ROOT / "L3Locator", ROOT / "L3LocatorTraining", Path(__file__).resolve().parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import vtk  # noqa: E402
from conftest import synthetic_volume  # noqa: E402

import slicer_shim  # noqa: E402
from l3locator import InputError, LabelError  # noqa: E402
from l3locator.labels import L3Label, read_label, write_label  # noqa: E402
from l3locator.models import DEFAULT_MODEL_PATH  # noqa: E402
from l3locator.reading import load_ct  # noqa: E402
from L3LocatorLib import cases, export, markups, plot  # noqa: E402
from L3LocatorLib.models import ModelCache, availableModels, saveUserModel, userModelsDirectory  # noqa: E402
from L3LocatorLib.volumes import ctVolumeFromNode  # noqa: E402
from L3LocatorTrainingLib import process, report  # noqa: E402
from L3LocatorTrainingLib.monitor import TrainingMonitor, parseProgressLine  # noqa: E402
from L3LocatorTrainingLib.summary import FolderSummaryTask, summaryText  # noqa: E402
from slicer_shim.scene import createHeadlessScene  # noqa: E402

NUM_SLICES, L3_RANGE = 48, (20, 27)
#: An LPS-like grid (i and j point left and back), offset from the origin: mistakes in the
#: IJK/RAS mapping show.
IJK_TO_RAS = np.array([[-0.9, 0, 0, 20.0], [0, -0.9, 0, 30.0], [0, 0, 5.0, -300.0], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def modules():
    """The module files, on Slicer's real Python layer (``../shared/vendor/slicer-python``) or,
    in a clone without ``../shared``, on the stand-ins of ``slicer_stubs``."""
    if slicer_shim.available():
        session = slicer_shim.startSession()
        try:
            yield SimpleNamespace(L3Locator=session.loadModule("L3Locator"), L3LocatorTraining=session.loadModule("L3LocatorTraining"))
        finally:
            session.close()
        return
    import slicer_stubs

    installed = slicer_stubs.install()
    try:
        import L3Locator
        import L3LocatorTraining

        yield SimpleNamespace(L3Locator=L3Locator, L3LocatorTraining=L3LocatorTraining)
    finally:
        for name in ("L3Locator", "L3LocatorTraining"):
            sys.modules.pop(name, None)
        slicer_stubs.uninstall(installed)


@pytest.fixture
def scene():
    return createHeadlessScene().scene


@pytest.fixture
def volumeNode(scene):
    volume = synthetic_volume(NUM_SLICES, L3_RANGE)
    return slicer.util.addVolumeFromArray(volume.voxels, IJK_TO_RAS, name="Phantom CT")


def ijkOfWorldPoint(volumeNode, position) -> np.ndarray:
    """IJK of a world point through the volume node's own RAS→IJK matrix (not the core's maths)."""
    rasToIJK = vtk.vtkMatrix4x4()
    volumeNode.GetRASToIJKMatrix(rasToIJK)
    return np.array(rasToIJK.MultiplyPoint([*position, 1.0])[:3])


def firstPoint(markupNode) -> list[float]:
    position = [0.0, 0.0, 0.0]
    markupNode.GetNthControlPointPositionWorld(0, position)
    return position


def folderContents(folder: Path) -> dict[str, bytes]:
    """Every entry under ``folder`` (hidden ones too) with its bytes (b"" for a folder)."""
    return {str(p.relative_to(folder)): (b"" if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


# --- volumes ------------------------------------------------------------------------------------

def test_volume_node_round_trips_to_ct_volume(volumeNode):
    volume = ctVolumeFromNode(volumeNode)
    assert np.array_equal(volume.voxels, synthetic_volume(NUM_SLICES, L3_RANGE).voxels)
    assert np.allclose(volume.ijk_to_ras, IJK_TO_RAS)
    assert volume.source == "Phantom CT" and volume.metadata == {"slicer_node_id": volumeNode.GetID()}


def test_non_ct_volumes_are_refused(scene, modules):
    label = slicer.util.addVolumeFromArray(np.zeros((4, 8, 8), dtype=np.uint8), nodeClassName="vtkMRMLLabelMapVolumeNode", name="seg")
    with pytest.raises(InputError, match="label map"):
        ctVolumeFromNode(label)
    with pytest.raises(InputError, match="no input volume"):
        ctVolumeFromNode(None)
    mr = slicer.util.addVolumeFromArray(np.full((30, 40, 40), 300, dtype=np.int16), name="MR")
    with pytest.raises(InputError, match="MR: values do not look like CT"):
        modules.L3Locator.L3LocatorLogic().findL3(mr, modules.L3Locator.fixedAnswerModel(10.0), device="cpu")
    assert markups.getL3Markup(mr) is None and plot.getProbabilityChart(mr) is None


# --- the L3 point ---------------------------------------------------------------------------------

def test_markup_at_a_slice_maps_back_to_it(volumeNode):
    sliceIndex = 23
    markupNode = markups.placeL3Markup(volumeNode, sliceIndex)
    assert markupNode.GetNumberOfControlPoints() == 1 and markupNode.GetName() == "Phantom CT L3"
    ijk = ijkOfWorldPoint(volumeNode, firstPoint(markupNode))
    assert ijk[2] == pytest.approx(sliceIndex, abs=1e-6)
    assert ijk[:2] == pytest.approx([19.5, 19.5], abs=1e-6)  # the centre of a 40 x 40 slice
    assert markups.markupSliceIndex(volumeNode, markupNode) == sliceIndex
    assert markups.labelSource(markupNode, sliceIndex) == "manual"

    # Placing again moves the same node; out-of-volume slices are refused.
    assert markups.placeL3Markup(volumeNode, 3) is markupNode
    assert markups.markupSliceIndex(volumeNode, markupNode) == 3
    with pytest.raises(ValueError, match="outside"):
        markups.placeL3Markup(volumeNode, NUM_SLICES)


def test_markup_follows_a_transformed_volume(volumeNode):
    transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(2, 3, 37.0)  # move the volume 37 mm up
    transformNode.SetMatrixTransformToParent(matrix)
    volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
    markupNode = markups.placeL3Markup(volumeNode, 30)
    local = ctVolumeFromNode(volumeNode).slice_center_ras(30)
    assert firstPoint(markupNode)[2] == pytest.approx(local[2] + 37.0)
    assert markups.markupSliceIndex(volumeNode, markupNode) == 30


def test_markups_files_are_shared_with_the_command_line(volumeNode, tmp_path):
    """The core's ``.mrk.json`` (what ``l3locator find`` writes) read by Slicer's markups reader,
    and Slicer's own file read by the core: the same point, on the same slice."""
    from l3locator.markups import read_markups_points, write_markups_point

    center = ctVolumeFromNode(volumeNode).slice_center_ras(25).tolist()
    coreFile = write_markups_point(tmp_path / "core_L3.mrk.json", center)
    markupNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode")
    storageNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsJsonStorageNode")
    storageNode.SetFileName(str(coreFile))
    assert storageNode.ReadData(markupNode)
    assert firstPoint(markupNode) == pytest.approx(center, abs=1e-4)
    assert markups.markupSliceIndex(volumeNode, markupNode) == 25

    storageNode.SetFileName(str(tmp_path / "slicer_L3.mrk.json"))
    assert storageNode.WriteData(markupNode)
    assert read_markups_points(tmp_path / "slicer_L3.mrk.json")[0] == pytest.approx(center, abs=1e-4)


# --- find L3: the module logic's composition --------------------------------------------------------

def test_found_l3_gets_a_markup_and_a_marked_range(volumeNode, modules):
    logic = modules.L3Locator.L3LocatorLogic()
    calls = []
    result = logic.findL3(volumeNode, modules.L3Locator.fixedAnswerModel(10.0), device="cpu", progress=lambda done, total: calls.append((done, total)))
    assert result.l3_found and result.l3_slice_range == (0, NUM_SLICES - 1) and calls[-1][0] == calls[-1][1]

    tableNode = plot.getProbabilityTable(volumeNode)
    assert tableNode.GetNumberOfRows() == NUM_SLICES
    assert np.array_equal(slicer.util.arrayFromTableColumn(tableNode, plot.COLUMN_SLICE), np.arange(NUM_SLICES))
    assert np.allclose(slicer.util.arrayFromTableColumn(tableNode, plot.COLUMN_PROBABILITY), result.slice_probabilities)
    assert np.all(slicer.util.arrayFromTableColumn(tableNode, plot.COLUMN_PROBABILITY) > 0.99)
    assert np.all(slicer.util.arrayFromTableColumn(tableNode, plot.COLUMN_RANGE) == 1.0)
    chartNode = plot.getProbabilityChart(volumeNode)
    assert {chartNode.GetNthPlotSeriesNode(i).GetYColumnName() for i in range(2)} == {plot.COLUMN_PROBABILITY, plot.COLUMN_RANGE}

    markupNode = markups.getL3Markup(volumeNode)
    assert markupNode.GetName() == "Phantom CT L3" and markupNode.GetNumberOfControlPoints() == 1
    assert ijkOfWorldPoint(volumeNode, firstPoint(markupNode))[2] == pytest.approx(result.l3_slice_index, abs=1e-6)
    assert markupNode.GetAttribute(markups.ATTRIBUTE_MODEL_SLICE_RANGE) == f"0,{NUM_SLICES - 1}"
    assert markupNode.GetDescription() == logic.resultText(result)
    assert logic.resultText(result).startswith(f"L3 at slice {result.l3_slice_index} (range 0–{NUM_SLICES - 1} of {NUM_SLICES})")
    assert markups.labelSource(markupNode, result.l3_slice_index) == "accepted"
    assert markups.labelSource(markupNode, result.l3_slice_index + 1) == "corrected"

    # A run that finds no L3 removes the markup and clears the range, reusing the plot nodes.
    nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
    result = logic.findL3(volumeNode, modules.L3Locator.fixedAnswerModel(-10.0), device="cpu")
    assert not result.l3_found and "no_l3_found" in result.flags
    assert logic.resultText(result) == f"No L3 found in {NUM_SLICES} slices (flags: {', '.join(result.flags)})."
    assert markups.getL3Markup(volumeNode) is None
    assert not slicer.util.arrayFromTableColumn(plot.getProbabilityTable(volumeNode), plot.COLUMN_RANGE).any()
    assert slicer.mrmlScene.GetNumberOfNodes() == nodesBefore - 2  # the markup and its display node


def test_find_l3_can_be_cancelled_and_leaves_the_scene_alone(volumeNode, modules):
    from l3locator.engine import Cancelled

    nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
    with pytest.raises(Cancelled):
        modules.L3Locator.L3LocatorLogic().findL3(volumeNode, modules.L3Locator.fixedAnswerModel(10.0), device="cpu", shouldCancel=lambda: True)
    assert slicer.mrmlScene.GetNumberOfNodes() == nodesBefore


# --- export: a case as a unit ---------------------------------------------------------------------------

def test_export_writes_a_case_the_core_reads_back(volumeNode, tmp_path):
    markupNode = markups.prepareManualL3Markup(volumeNode)
    with pytest.raises(LabelError, match="no L3 point"):
        export.exportCase(volumeNode, markupNode, tmp_path)
    truth = sum(L3_RANGE) // 2
    markupNode.AddControlPoint(ctVolumeFromNode(volumeNode).slice_center_ras(truth).tolist())

    exported = export.exportCase(volumeNode, markupNode, tmp_path / "training", caseName="phantom 07", annotator="tester")
    assert exported.imagePath.name == "phantom_07.nrrd" and exported.labelPath.name == "phantom_07.l3.json" and exported.replaced == []
    label = read_label(exported.labelPath)
    assert (label.l3_slice_index, label.source, label.annotator, label.image) == (truth, "manual", "tester", "phantom_07.nrrd")
    assert label.l3_slice_range == (truth - 3, truth + 3)  # ± 15 mm of 5 mm slices
    assert (label.num_slices, label.slice_axis, label.model) == (NUM_SLICES, "k", None)
    assert label.l3_position_ras == pytest.approx(ctVolumeFromNode(volumeNode).slice_center_ras(truth).tolist(), abs=1e-3)

    image = load_ct(exported.imagePath)
    assert np.array_equal(image.voxels, slicer.util.arrayFromVolume(volumeNode))
    assert np.allclose(image.ijk_to_ras, IJK_TO_RAS, atol=1e-4)
    assert image.slice_center_ras(label.l3_slice_index) == pytest.approx(label.l3_position_ras, abs=1e-3)
    assert sorted(p.name for p in (tmp_path / "training").iterdir()) == ["phantom_07.l3.json", "phantom_07.nrrd"]


def test_export_after_a_run_records_what_the_model_said(volumeNode, modules, tmp_path):
    logic = modules.L3Locator.L3LocatorLogic()
    result = logic.findL3(volumeNode, modules.L3Locator.fixedAnswerModel(10.0), device="cpu")
    markupNode = markups.getL3Markup(volumeNode)
    accepted = read_label(export.exportCase(volumeNode, markupNode, tmp_path, caseName="accepted").labelPath)
    assert (accepted.source, accepted.l3_slice_range, accepted.model_slice_index) == ("accepted", (0, NUM_SLICES - 1), result.l3_slice_index)
    assert accepted.model == result.model

    moved = result.l3_slice_index - 10
    markupNode.SetNthControlPointPositionWorld(0, *ctVolumeFromNode(volumeNode).slice_center_ras(moved).tolist())
    corrected = read_label(export.exportCase(volumeNode, markupNode, tmp_path, caseName="corrected").labelPath)
    assert (corrected.source, corrected.l3_slice_index, corrected.l3_slice_range) == ("corrected", moved, (moved - 3, moved + 3))


@pytest.mark.parametrize("existing", [
    "X.nii.gz", "X.nii", "X.nrrd", "X.nhdr", "X.NII.GZ", "X_vertebrae.nii.gz", "X_vertebrae.nrrd", "X.l3.json", "X/",
])
def test_a_case_of_that_name_in_any_format_is_a_clash(volumeNode, tmp_path, existing):
    if existing.endswith("/"):
        (tmp_path / existing).mkdir()
        (tmp_path / existing / "IM0001.dcm").write_bytes(b"dicom")
    else:
        (tmp_path / existing).write_bytes(b"annotator's file")
    before = folderContents(tmp_path)
    markupNode = markups.placeL3Markup(volumeNode, 22)
    with pytest.raises(LabelError, match=r"case 'X' already exists .*" + existing.rstrip("/").replace(".", r"\.")):
        export.exportCase(volumeNode, markupNode, tmp_path, caseName="X")
    assert folderContents(tmp_path) == before
    assert cases.caseFiles(tmp_path, "X") == [tmp_path / existing.rstrip("/")]
    assert cases.caseFiles(tmp_path, "X2") == [] and cases.caseFiles(tmp_path / "missing", "X") == []


@pytest.fixture
def oldCase(tmp_path):
    """A folder holding case X as a CT and a vertebra map, and another case Y."""
    folder = tmp_path / "training"
    folder.mkdir()
    for name in ("X.nii.gz", "X_vertebrae.nii.gz", "Y.nrrd", "Y.l3.json"):
        (folder / name).write_bytes(f"old {name}".encode())
    return folder


def test_replace_swaps_the_whole_case(volumeNode, oldCase):
    markupNode = markups.placeL3Markup(volumeNode, 22)
    exported = export.exportCase(volumeNode, markupNode, oldCase, caseName="X", replace=True)
    assert exported.replaced == ["X.nii.gz", "X_vertebrae.nii.gz"]
    assert sorted(os.listdir(oldCase)) == ["X.l3.json", "X.nrrd", "Y.l3.json", "Y.nrrd"]  # no staging folder left
    assert read_label(oldCase / "X.l3.json").l3_slice_index == 22
    assert (oldCase / "Y.nrrd").read_bytes() == b"old Y.nrrd"


def test_a_failed_image_write_leaves_the_old_case_whole(volumeNode, oldCase, monkeypatch):
    def failingWrite(node, path):
        path.write_bytes(b"half a volume")
        raise OSError("disk full")

    monkeypatch.setattr(export, "writeVolume", failingWrite)
    before = folderContents(oldCase)
    with pytest.raises(OSError, match="disk full"):
        export.exportCase(volumeNode, markups.placeL3Markup(volumeNode, 22), oldCase, caseName="X", replace=True)
    assert folderContents(oldCase) == before


def test_a_failure_while_publishing_puts_the_old_case_back(volumeNode, oldCase, monkeypatch):
    """The new CT is in place when linking the label (published last) fails: the CT is removed
    again, and the old CT and vertebra map are moved back."""
    realLink, linked = os.link, []

    def failingSecondLinkIntoTheFolder(source, target):
        if Path(target).parent == oldCase:  # publishing (not the label writer inside the staging folder)
            if linked:
                raise OSError("no more links")
            linked.append(target)
        realLink(source, target)

    monkeypatch.setattr(os, "link", failingSecondLinkIntoTheFolder)
    before = folderContents(oldCase)
    with pytest.raises(OSError, match="no more links"):
        export.exportCase(volumeNode, markups.placeL3Markup(volumeNode, 22), oldCase, caseName="X", replace=True)
    assert [Path(p).name for p in linked] == ["X.nrrd"]
    assert folderContents(oldCase) == before


def test_old_files_that_cannot_be_put_back_are_kept_and_named(volumeNode, oldCase, monkeypatch):
    realReplace, realLink = os.replace, os.link

    def noWayBack(source, target):
        if Path(source).parent.name == cases.REPLACED_FOLDER:
            raise OSError("read-only")
        realReplace(source, target)

    def noLinkIntoTheFolder(source, target):
        if Path(target).parent == oldCase:
            raise OSError("no links here")
        realLink(source, target)

    monkeypatch.setattr(os, "replace", noWayBack)
    monkeypatch.setattr(os, "link", noLinkIntoTheFolder)
    with pytest.raises(LabelError, match="could not all be put back; they are in") as raised:
        export.exportCase(volumeNode, markups.placeL3Markup(volumeNode, 22), oldCase, caseName="X", replace=True)
    keptIn = Path(str(raised.value).rsplit("they are in ", 1)[1])
    assert sorted(p.name for p in keptIn.iterdir()) == ["X.nii.gz", "X_vertebrae.nii.gz"]
    assert (keptIn / "X_vertebrae.nii.gz").read_bytes() == b"old X_vertebrae.nii.gz"


def test_a_case_that_appears_while_exporting_is_not_overwritten(volumeNode, tmp_path, monkeypatch):
    realWrite = export.writeVolume

    def writeWhileAnAnnotatorSaves(node, path):
        realWrite(node, path)
        (tmp_path / "X.l3.json").write_text("a colleague's label")

    monkeypatch.setattr(export, "writeVolume", writeWhileAnAnnotatorSaves)
    with pytest.raises(LabelError, match="appeared .* while exporting"):
        export.exportCase(volumeNode, markups.placeL3Markup(volumeNode, 22), tmp_path, caseName="X")
    assert folderContents(tmp_path) == {"X.l3.json": b"a colleague's label"}


def test_export_refuses_a_point_outside_the_volume(volumeNode, tmp_path):
    markupNode = markups.placeL3Markup(volumeNode, 0)
    position = firstPoint(markupNode)
    markupNode.SetNthControlPointPositionWorld(0, position[0], position[1], position[2] - 50.0)
    with pytest.raises(LabelError, match="outside"):
        export.exportCase(volumeNode, markupNode, tmp_path)
    assert not any(tmp_path.iterdir())


# --- models ---------------------------------------------------------------------------------------

def test_user_models_are_listed_after_saving(tmp_path, monkeypatch, modules):
    monkeypatch.setenv("L3LOCATOR_MODELS_DIR", str(tmp_path / "models"))
    assert userModelsDirectory() == tmp_path / "models"
    trained = modules.L3Locator.fixedAnswerModel(1.0).save(tmp_path / "run" / "final.pt")
    saved = saveUserModel(trained, "my model: v1")
    assert saved == tmp_path / "models" / "my_model_v1.pt" and saved.read_bytes() == trained.read_bytes()
    entries = availableModels()
    assert [entry.path for entry in entries if entry.path.parent == saved.parent] == [saved]
    assert entries[0] == type(entries[0])("Default (shipped)", DEFAULT_MODEL_PATH) and DEFAULT_MODEL_PATH.is_file()
    with pytest.raises(FileExistsError):
        saveUserModel(trained, "my model: v1")
    assert sorted(p.name for p in saved.parent.iterdir()) == ["my_model_v1.pt"]


def test_model_cache_reloads_a_changed_file(tmp_path, modules):
    path = modules.L3Locator.fixedAnswerModel(1.0).save(tmp_path / "m.pt")
    cache = ModelCache()
    first = cache.load(path)
    assert cache.load(path) is first
    modules.L3Locator.fixedAnswerModel(-1.0).save(path)
    os.utime(path, ns=(time.time_ns(), path.stat().st_mtime_ns + 10**9))
    assert cache.load(path) is not first


# --- training: process, progress, folder summary, report ------------------------------------------------

def test_training_monitor_follows_a_run():
    monitor = TrainingMonitor()
    assert monitor.statusText() == "Preparing the data…" and monitor.fraction() == 0.0
    lines = [
        'L3LOCATOR_PROGRESS {"stage": "trial_start", "trial": 1, "trials": 4, "epoch": null, "epochs": 2, "loss": null, "objective": null, "best_objective": null, "eta_s": null, "message": ""}',
        "[####] trial 1/4 human line",
        'L3LOCATOR_PROGRESS {"stage": "epoch", "trial": 1, "trials": 4, "epoch": 1, "epochs": 2, "loss": 0.5, "objective": null, "best_objective": null, "eta_s": 3600.0, "message": ""}',
    ]
    assert [monitor.consume(line) is not None for line in lines] == [True, False, True]
    assert monitor.statusText() == "Trial 1 of 4, epoch 1 of 2 · about 60 min left"
    assert 0.0 <= monitor.fraction() < 0.01
    monitor.consume(
        'L3LOCATOR_PROGRESS {"stage": "done", "trial": null, "trials": 4, "epoch": null, "epochs": null, "loss": null, "objective": null, '
        '"best_objective": 1.25, "eta_s": 0.0, "message": "", "model": "/x/final.pt", "report": "/x/cv_report.json", '
        '"validated": false, "warnings": ["fold 2 found no L3 in any case"]}'
    )
    assert (monitor.modelPath, monitor.reportPath, monitor.fraction()) == ("/x/final.pt", "/x/cv_report.json", 1.0)
    assert monitor.warnings == ["fold 2 found no L3 in any case"] and monitor.lastLines() == ["[####] trial 1/4 human line"]
    assert "best F1 0.800" in monitor.statusText()
    assert parseProgressLine("L3LOCATOR_PROGRESS {not json") is None and parseProgressLine('L3LOCATOR_PROGRESS {"no": "stage"}') is None


def test_training_command_and_environment(tmp_path):
    from l3locator.cli import build_parser

    command = process.trainingCommand(tmp_path / "data", tmp_path / "out", trials=3, epochs=2, folds=2, device="auto", resume=True)
    assert command[command.index("--trials") + 1] == "3" and command[command.index("--output-dir") + 1] == str(tmp_path / "out")
    assert "--device" not in command and "--resume" in command and "--small" not in command
    parsed = build_parser().parse_args(command[command.index("train") :])
    # augmentation unset: the paper's scheme from scratch, the parent's when adapting a model
    assert (parsed.trials, parsed.epochs, parsed.folds, parsed.progress, parsed.augmentation, parsed.init_model) == (3, 2, 2, "json", None, None)
    augmented = process.trainingCommand(tmp_path / "data", tmp_path / "out", trials=3, epochs=2, folds=2, device="cuda", augmentAllSlices=True)
    parsed = build_parser().parse_args(augmented[augmented.index("train") :])
    assert (parsed.augmentation, parsed.device) == ("all-slices", "cuda")
    assert process.processEnvironment()["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT / "L3Locator")


def test_folder_summary_counts_exported_cases(volumeNode, tmp_path):
    for case, sliceIndex in (("patA__1", 10), ("patA__2", 30), ("patB__1", 22)):
        export.exportCase(volumeNode, markups.placeL3Markup(volumeNode, sliceIndex), tmp_path, caseName=case)
    (tmp_path / "unlabelled.nrrd").write_bytes((tmp_path / "patB__1.nrrd").read_bytes())
    task = FolderSummaryTask(tmp_path)
    assert task.wait(60)
    summary = task.result()
    ranges = [read_label(path).l3_slice_range for path in sorted(tmp_path.glob("*.l3.json"))]
    l3Slices = sum(last - first + 1 for first, last in ranges)
    assert (summary["cases"], summary["patients"], summary["l3_slices"]) == (3, 2, l3Slices)
    assert (summary["other_slices"], summary["unlabelled_files"], summary["problems"]) == (3 * NUM_SLICES - l3Slices, ["unlabelled.nrrd"], [])
    assert summaryText(summary) == f"3 case(s) of 2 patient(s): {l3Slices} L3 slices, {3 * NUM_SLICES - l3Slices} other slices; 1 CT file(s) without a label (ignored)."


def test_folder_summary_names_what_keeps_a_folder_from_training(tmp_path):
    (tmp_path / "a.nrrd").touch()
    write_label(L3Label("a", "a.nrrd", 5, (4, 6), "manual", num_slices=20), tmp_path / "a.l3.json")
    write_label(L3Label("orphan", "orphan.nrrd", 5, (4, 6), "manual", num_slices=20), tmp_path / "orphan.l3.json")
    task = FolderSummaryTask(tmp_path)
    assert task.wait(60)
    lines = summaryText(task.result()).splitlines()
    assert lines[0] == "1 case(s) of 1 patient(s): 3 L3 slices, 17 other slices."
    assert any("orphan.l3.json" in line for line in lines[1:]) and any("patient" in line for line in lines[1:])

    missing = FolderSummaryTask(tmp_path / "missing")
    assert missing.wait(60)
    with pytest.raises(InputError, match="missing"):
        missing.result()


def test_report_text_and_plot(scene):
    cvReport = {
        "summary": {"cases": 3, "failures": 1, "error_slices": {"mean": 1.5, "sd": 0.5, "median": 1.0, "max": 2.0}, "within_2": 2 / 3, "slice_f1": 0.9},
        "cases": [
            {"case": "a", "true_index": 10.0, "predicted_index": 11, "failure": False},
            {"case": "b", "true_index": 20.5, "predicted_index": 19, "failure": False},
            {"case": "c", "true_index": 30.0, "predicted_index": 0, "failure": True},
            {"case": "d", "true_index": None, "predicted_index": 5, "failure": False},
        ],
    }
    assert report.reportText(cvReport) == (
        "3 case(s): L3 slice error 1.50 ± 0.50 slices (median 1.00, max 2.0); 67% within 2 slices; slice F1 0.900; 1 case(s) without an answer."
    )
    chartNode = report.showReportPlot(cvReport)
    tableNode = chartNode.GetNthPlotSeriesNode(0).GetTableNode()
    assert slicer.util.arrayFromTableColumn(tableNode, report.COLUMN_TRUE).tolist() == [10.0, 20.5]
    assert slicer.util.arrayFromTableColumn(tableNode, report.COLUMN_PREDICTED).tolist() == [11.0, 19.0]
    assert report.showReportPlot(cvReport) is chartNode and chartNode.GetNumberOfPlotSeriesNodes() == 2  # reused


def test_a_training_run_can_be_cancelled(tmp_path):
    run = process.TrainingRun([sys.executable, "-c", "import time; print('started', flush=True); time.sleep(60)"])
    deadline = time.monotonic() + 30
    lines = []
    while not lines and time.monotonic() < deadline:
        lines = run.readLines()
        time.sleep(0.05)
    assert lines == ["started"]
    run.cancel()
    assert run.cancelled and run.wait(10) != 0 and not run.isRunning()


@pytest.mark.slow
def test_training_runs_in_the_background_and_its_model_is_saved(volumeNode, modules, tmp_path, monkeypatch):
    """The real ``l3locator train`` in a background process on three exported cases."""
    monkeypatch.setenv("L3LOCATOR_MODELS_DIR", str(tmp_path / "models"))
    for case, sliceIndex in (("p1", 22), ("p2", 23), ("p3", 24)):
        export.exportCase(volumeNode, markups.placeL3Markup(volumeNode, sliceIndex), tmp_path / "data", caseName=case)
    command = process.trainingCommand(tmp_path / "data", tmp_path / "run", trials=1, epochs=1, folds=0, device="cpu", small=True)
    run = process.TrainingRun.start(command)
    monitor = TrainingMonitor()
    deadline = time.monotonic() + 600
    while run.isRunning() and time.monotonic() < deadline:
        for line in run.readLines():
            monitor.consume(line)
        time.sleep(0.2)
    for line in run.readLines():
        monitor.consume(line)
    assert run.returnCode() == 0, "\n".join(monitor.lastLines())
    assert monitor.stage == "done" and Path(monitor.modelPath).is_file()
    saved = saveUserModel(Path(monitor.modelPath), "phantom-demo")
    assert saved in [entry.path for entry in availableModels()]
    result = modules.L3Locator.L3LocatorLogic().findL3(volumeNode, saved, device="cpu")
    assert result.num_slices == NUM_SLICES and json.loads(json.dumps(result.to_dict(), allow_nan=False))["model"]
