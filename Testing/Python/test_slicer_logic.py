"""The Slicer modules' logic on a real MRML scene (the ``slicer-core`` wheel), without the Slicer app.

Models here are untrained (random answers), so the checks are on structure and geometry: the
plot table's rows, the markup's slice (RAS → IJK with the volume node's own matrix), file round
trips, the exported case as the core library reads it, and the self-tests the modules ship.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel")
if not hasattr(slicer, "vtkMRMLScene"):
    pytest.skip("the 'slicer' package here is not slicer-core", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[2]
for folder in (ROOT / "L3Locator", ROOT / "L3LocatorTraining", Path(__file__).resolve().parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import vtk  # noqa: E402

from l3locator import InputError, L3Model, LabelError, PreprocessingConfig  # noqa: E402
from l3locator.labels import read_label  # noqa: E402
from l3locator.phantom import generate_phantom  # noqa: E402
from l3locator.reading import load_ct  # noqa: E402
from L3LocatorLib import logic as scene_logic  # noqa: E402
from L3LocatorLib.headless import createHeadlessScene  # noqa: E402
from L3LocatorLib.logic import L3LocatorSceneLogic  # noqa: E402
from L3LocatorLib.models import availableModels, saveUserModel, shippedDefaultModelPath, userModelsDirectory  # noqa: E402
from L3LocatorLib.volumes import addVolumeNodeFromCTVolume, ctVolumeFromNode  # noqa: E402


@pytest.fixture(scope="module")
def phantom():
    return generate_phantom(7, shape_ij=(64, 64), slice_thickness_mm=5.0, extent="abdomen")


@pytest.fixture(scope="module")
def model():
    return L3Model.new("resnet18", PreprocessingConfig(input_size=32))


def biased_model(l3_logit: float) -> L3Model:
    """A model that gives every slice the same answer: zero weights, class logits (-x, +x).
    Large positive: every slice is L3 (L3 is found at the middle slice); negative: none is."""
    network_model = L3Model.new("resnet18", PreprocessingConfig(input_size=32))
    with torch.no_grad():
        network_model.network.fc.weight.zero_()
        network_model.network.fc.bias.copy_(torch.tensor([-l3_logit, l3_logit]))
    return network_model


@pytest.fixture
def scene():
    return createHeadlessScene().scene


@pytest.fixture
def volumeNode(scene, phantom):
    return addVolumeNodeFromCTVolume(phantom.volume, "Phantom CT")


def ijkOfWorldPoint(volumeNode, position) -> np.ndarray:
    """IJK of a world point through the volume node's own RAS→IJK matrix (not the core's maths)."""
    rasToIJK = vtk.vtkMatrix4x4()
    volumeNode.GetRASToIJKMatrix(rasToIJK)
    return np.array(rasToIJK.MultiplyPoint([*position, 1.0])[:3])


def firstPoint(markupNode) -> list[float]:
    position = [0.0, 0.0, 0.0]
    markupNode.GetNthControlPointPositionWorld(0, position)
    return position


def test_volume_node_round_trips_to_ct_volume(volumeNode, phantom):
    volume = ctVolumeFromNode(volumeNode)
    assert np.array_equal(volume.voxels, phantom.volume.voxels)
    assert np.allclose(volume.ijk_to_ras, phantom.volume.ijk_to_ras)
    assert volume.metadata["looks_like_ct"] is True


def test_non_ct_volumes_are_refused(scene):
    mr = slicer.util.addVolumeFromArray(np.full((4, 8, 8), 300, dtype=np.int16), name="MR")
    assert ctVolumeFromNode(mr).metadata["looks_like_ct"] is False
    label = slicer.util.addVolumeFromArray(np.zeros((4, 8, 8), dtype=np.uint8), nodeClassName="vtkMRMLLabelMapVolumeNode", name="seg")
    with pytest.raises(InputError, match="label map"):
        ctVolumeFromNode(label)
    with pytest.raises(InputError, match="does not look like CT|do not look like CT"):
        L3LocatorSceneLogic().findL3(mr, L3Model.new("resnet18", PreprocessingConfig(input_size=32)), device="cpu")


def test_find_l3_fills_plot_table_and_places_markup(volumeNode, phantom, model):
    logic = L3LocatorSceneLogic()
    calls = []
    result = logic.findL3(volumeNode, model, device="cpu", progress=lambda done, total: calls.append((done, total)))
    numSlices = phantom.volume.num_slices
    assert result.num_slices == numSlices and calls[-1] == (numSlices, numSlices)

    tableNode = logic.getProbabilityTable(volumeNode)
    assert tableNode.GetNumberOfRows() == numSlices
    assert np.allclose(slicer.util.arrayFromTableColumn(tableNode, scene_logic.COLUMN_PROBABILITY), result.slice_probabilities)
    assert np.array_equal(slicer.util.arrayFromTableColumn(tableNode, scene_logic.COLUMN_SLICE), np.arange(numSlices))
    chartNode = logic.getProbabilityChart(volumeNode)
    assert chartNode.GetNumberOfPlotSeriesNodes() == 2
    assert {chartNode.GetNthPlotSeriesNode(i).GetYColumnName() for i in range(2)} == {scene_logic.COLUMN_PROBABILITY, scene_logic.COLUMN_RANGE}
    assert logic.resultText(result).startswith("L3 at slice" if result.l3_found else "No L3 found")


def test_found_l3_gets_a_markup_and_a_marked_range(volumeNode, phantom):
    logic = L3LocatorSceneLogic()
    result = logic.findL3(volumeNode, biased_model(10.0), device="cpu")
    numSlices = phantom.volume.num_slices
    assert result.l3_found and result.l3_slice_range == (0, numSlices - 1)
    tableNode = logic.getProbabilityTable(volumeNode)
    assert np.all(slicer.util.arrayFromTableColumn(tableNode, scene_logic.COLUMN_PROBABILITY) > 0.99)
    assert np.all(slicer.util.arrayFromTableColumn(tableNode, scene_logic.COLUMN_RANGE) == 1.0)

    markupNode = logic.getL3Markup(volumeNode)
    assert markupNode.GetName() == "Phantom CT L3" and markupNode.GetNumberOfControlPoints() == 1
    assert ijkOfWorldPoint(volumeNode, firstPoint(markupNode))[2] == pytest.approx(result.l3_slice_index, abs=1e-6)
    assert markupNode.GetAttribute(scene_logic.ATTRIBUTE_MODEL_SLICE_INDEX) == str(result.l3_slice_index)
    assert markupNode.GetAttribute(scene_logic.ATTRIBUTE_MODEL_SLICE_RANGE) == f"0,{numSlices - 1}"
    assert logic.labelSource(markupNode, result.l3_slice_index) == "accepted"
    assert logic.labelSource(markupNode, result.l3_slice_index + 1) == "corrected"

    # A run that finds no L3 removes the markup and clears the range, reusing the plot nodes.
    nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
    result = logic.findL3(volumeNode, biased_model(-10.0), device="cpu")
    assert not result.l3_found and "no_l3_found" in result.flags
    assert logic.getL3Markup(volumeNode) is None
    assert not slicer.util.arrayFromTableColumn(logic.getProbabilityTable(volumeNode), scene_logic.COLUMN_RANGE).any()
    assert slicer.mrmlScene.GetNumberOfNodes() == nodesBefore - 2  # the markup and its display node


def test_find_l3_can_be_cancelled_and_leaves_the_scene_alone(volumeNode, model):
    from l3locator.scoring import Cancelled

    nodesBefore = slicer.mrmlScene.GetNumberOfNodes()
    with pytest.raises(Cancelled):
        L3LocatorSceneLogic().findL3(volumeNode, model, device="cpu", shouldCancel=lambda: True)
    assert slicer.mrmlScene.GetNumberOfNodes() == nodesBefore


def test_markup_at_the_l3_slice_maps_back_to_it(volumeNode, phantom):
    logic = L3LocatorSceneLogic()
    first, last = phantom.l3_range
    sliceIndex = (first + last) // 2
    markupNode = logic.placeL3Markup(volumeNode, sliceIndex)
    assert markupNode.GetNumberOfControlPoints() == 1
    ijk = ijkOfWorldPoint(volumeNode, firstPoint(markupNode))
    assert ijk[2] == pytest.approx(sliceIndex, abs=1e-6)
    center = (np.array(phantom.volume.voxels.shape[::-1]) - 1) / 2
    assert ijk[:2] == pytest.approx(center[:2], abs=1e-6)  # the centre of the slice
    assert logic.markupSliceIndex(volumeNode, markupNode) == sliceIndex
    assert logic.labelSource(markupNode, sliceIndex) == "manual"

    # Placing again moves the same node; out-of-volume slices are refused.
    assert logic.placeL3Markup(volumeNode, first) is markupNode
    assert logic.markupSliceIndex(volumeNode, markupNode) == first
    with pytest.raises(ValueError, match="outside"):
        logic.placeL3Markup(volumeNode, phantom.volume.num_slices)


def test_markup_follows_a_transformed_volume(volumeNode, phantom):
    logic = L3LocatorSceneLogic()
    transformNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(2, 3, 37.0)  # move the volume 37 mm up
    transformNode.SetMatrixTransformToParent(matrix)
    volumeNode.SetAndObserveTransformNodeID(transformNode.GetID())
    markupNode = logic.placeL3Markup(volumeNode, 30)
    local = ctVolumeFromNode(volumeNode).slice_center_ras(30)
    assert firstPoint(markupNode)[2] == pytest.approx(local[2] + 37.0)
    assert logic.markupSliceIndex(volumeNode, markupNode) == 30


def test_markups_file_round_trip(volumeNode, tmp_path):
    logic = L3LocatorSceneLogic()
    markupNode = logic.placeL3Markup(volumeNode, 25)
    path = logic.saveMarkup(markupNode, tmp_path / "sub" / "Phantom_L3.mrk.json")
    document = json.loads(path.read_text())
    assert document["markups"][0]["type"] == "Fiducial"
    assert len(document["markups"][0]["controlPoints"]) == 1
    reloaded = logic.loadMarkup(path)
    assert reloaded is not markupNode
    assert firstPoint(reloaded) == pytest.approx(firstPoint(markupNode), abs=1e-4)
    assert logic.markupSliceIndex(volumeNode, reloaded) == 25
    with pytest.raises(OSError):
        logic.loadMarkup(tmp_path / "missing.mrk.json")


def test_export_label_writes_a_case_the_core_reads_back(volumeNode, phantom, model, tmp_path):
    logic = L3LocatorSceneLogic()
    result = logic.findL3(volumeNode, model, device="cpu")
    first, last = phantom.l3_range
    truth = (first + last) // 2
    if result.l3_found:
        assert logic.labelSource(logic.getL3Markup(volumeNode), result.l3_slice_index) == "accepted"
    markupNode = logic.prepareManualL3Markup(volumeNode)
    assert markupNode.GetNumberOfControlPoints() == 0
    with pytest.raises(LabelError, match="no L3 point"):
        logic.exportLabel(volumeNode, markupNode, tmp_path)
    markupNode.AddControlPoint(ctVolumeFromNode(volumeNode).slice_center_ras(truth).tolist())

    exported = logic.exportLabel(volumeNode, markupNode, tmp_path / "training", caseName="phantom 07", annotator="tester")
    assert exported.imagePath.name == "phantom_07.nrrd" and exported.labelPath.name == "phantom_07.l3.json"
    label = read_label(exported.labelPath)
    expectedSource = "manual" if not result.l3_found else ("accepted" if truth == result.l3_slice_index else "corrected")
    assert (label.l3_slice_index, label.source, label.annotator, label.image) == (truth, expectedSource, "tester", "phantom_07.nrrd")
    half = round(scene_logic.L3_HALF_EXTENT_MM / phantom.volume.slice_thickness)
    if expectedSource != "accepted":
        assert label.l3_slice_range == (truth - half, truth + half)
    assert label.num_slices == phantom.volume.num_slices and label.slice_axis == "k"
    assert label.l3_position_ras == pytest.approx(phantom.volume.slice_center_ras(truth).tolist(), abs=1e-3)
    assert (label.model is not None) == result.l3_found

    image = load_ct(exported.imagePath)
    assert np.array_equal(image.voxels, phantom.volume.voxels)
    assert np.allclose(image.ijk_to_ras, phantom.volume.ijk_to_ras, atol=1e-4)
    assert image.slice_center_ras(label.l3_slice_index) == pytest.approx(label.l3_position_ras, abs=1e-3)

    # Never silently overwritten; replaced only when asked; no temporary files left behind.
    labelBefore = exported.labelPath.read_text()
    markupNode.SetNthControlPointPositionWorld(0, *ctVolumeFromNode(volumeNode).slice_center_ras(truth + 1).tolist())
    with pytest.raises(LabelError, match="already exists"):
        logic.exportLabel(volumeNode, markupNode, tmp_path / "training", caseName="phantom 07")
    assert exported.labelPath.read_text() == labelBefore
    replaced = logic.exportLabel(volumeNode, markupNode, tmp_path / "training", caseName="phantom 07", overwrite=True)
    assert read_label(replaced.labelPath).l3_slice_index == truth + 1
    assert sorted(p.name for p in (tmp_path / "training").iterdir()) == ["phantom_07.l3.json", "phantom_07.nrrd"]


def test_export_refuses_a_point_outside_the_volume(volumeNode, tmp_path):
    logic = L3LocatorSceneLogic()
    markupNode = logic.placeL3Markup(volumeNode, 0)
    position = firstPoint(markupNode)
    markupNode.SetNthControlPointPositionWorld(0, position[0], position[1], position[2] - 50.0)
    with pytest.raises(LabelError, match="outside"):
        logic.exportLabel(volumeNode, markupNode, tmp_path)
    assert not any(tmp_path.iterdir())


def test_user_models_are_listed_after_saving(tmp_path, monkeypatch, model):
    monkeypatch.setenv("L3LOCATOR_MODELS_DIR", str(tmp_path / "models"))
    assert userModelsDirectory() == tmp_path / "models"
    trained = model.save(tmp_path / "run" / "final.pt")
    saved = saveUserModel(trained, "my model: v1")
    assert saved == tmp_path / "models" / "my_model_v1.pt"
    assert [entry.path for entry in availableModels() if entry.path.parent == saved.parent] == [saved]
    with pytest.raises(FileExistsError):
        saveUserModel(trained, "my model: v1")
    logic = L3LocatorSceneLogic()
    assert logic.loadModel(saved) is logic.loadModel(saved)  # cached while the file is unchanged


def test_default_model_path_matches_the_core():
    from l3locator.modelfile import DEFAULT_MODEL_PATH

    assert shippedDefaultModelPath() == DEFAULT_MODEL_PATH


# --- the module files, imported with test-only stand-ins for the Slicer application -------------

@pytest.fixture(scope="module")
def slicerModules():
    import slicer_stubs

    installed = slicer_stubs.install()
    try:
        import L3Locator
        import L3LocatorTraining

        yield L3Locator, L3LocatorTraining
    finally:
        for name in ("L3Locator", "L3LocatorTraining"):
            sys.modules.pop(name, None)
        slicer_stubs.uninstall(installed)


def test_module_metadata(slicerModules):
    from types import SimpleNamespace

    L3Locator, L3LocatorTraining = slicerModules
    for moduleClass in (L3Locator.L3Locator, L3LocatorTraining.L3LocatorTraining):
        parent = SimpleNamespace()
        moduleClass(parent)
        assert parent.categories == ["Quantification"] and parent.title and parent.helpText
    assert issubclass(L3Locator.L3LocatorLogic, L3LocatorSceneLogic)


def test_requirements_file_lists_the_core_dependencies(slicerModules):
    L3Locator, _ = slicerModules
    names = {line.split(">")[0].split("=")[0].lower() for line in L3Locator.requirementLines(L3Locator.REQUIREMENTS_FILE)}
    assert {"torch", "torchvision", "numpy", "pydicom", "nibabel", "pynrrd", "scikit-optimize"} <= names
    assert all(">=" in line for line in L3Locator.requirementLines(L3Locator.REQUIREMENTS_FILE))  # ranges, not pins


def test_l3locator_self_test_passes(scene, slicerModules):
    L3Locator, _ = slicerModules
    L3Locator.L3LocatorTest().runTest()


def test_l3locator_training_self_test_passes(scene, slicerModules):
    _, L3LocatorTraining = slicerModules
    L3LocatorTraining.L3LocatorTrainingTest().runTest()


def test_training_folder_summary(scene, slicerModules, volumeNode, phantom, tmp_path):
    _, L3LocatorTraining = slicerModules
    logic = L3LocatorSceneLogic()
    markupNode = logic.placeL3Markup(volumeNode, 30)
    for case in ("a", "b"):
        logic.exportLabel(volumeNode, markupNode, tmp_path, caseName=case)
    (tmp_path / "unlabelled.nrrd").write_bytes((tmp_path / "a.nrrd").read_bytes())
    summary = L3LocatorTraining.L3LocatorTrainingLogic.summarizeFolder(tmp_path)
    label = read_label(tmp_path / "a.l3.json")
    inL3 = label.l3_slice_range[1] - label.l3_slice_range[0] + 1
    assert (summary.cases, summary.l3Slices, summary.otherSlices, summary.unlabelledFiles) == (2, 2 * inL3, 2 * (phantom.volume.num_slices - inL3), 1)
    assert summary.text().startswith("2 case(s)")


def test_training_monitor_follows_a_run(slicerModules):
    _, L3LocatorTraining = slicerModules
    monitor = L3LocatorTraining.TrainingMonitor()
    assert monitor.statusText() == "Preparing the data…" and monitor.fraction() == 0.0
    lines = [
        'L3LOCATOR_PROGRESS {"stage": "trial_start", "trial": 1, "trials": 4, "epoch": null, "epochs": 2, "loss": null, "objective": null, "best_objective": null, "eta_s": null, "message": ""}',
        "[####] trial 1/4 human line",
        'L3LOCATOR_PROGRESS {"stage": "epoch", "trial": 1, "trials": 4, "epoch": 1, "epochs": 2, "loss": 0.5, "objective": null, "best_objective": null, "eta_s": 3600.0, "message": ""}',
    ]
    assert [monitor.consume(line) is not None for line in lines] == [True, False, True]
    assert monitor.statusText() == "Trial 1 of 4, epoch 1 of 2 · about 60 min left"
    assert 0.0 <= monitor.fraction() < 0.01
    monitor.consume('L3LOCATOR_PROGRESS {"stage": "done", "trial": null, "trials": 4, "epoch": null, "epochs": null, "loss": null, "objective": null, "best_objective": 1.25, "eta_s": 0.0, "message": "", "model": "/x/final.pt", "report": "/x/cv_report.json"}')
    assert (monitor.modelPath, monitor.reportPath, monitor.fraction()) == ("/x/final.pt", "/x/cv_report.json", 1.0)
    assert "best F1 0.800" in monitor.statusText()
    assert L3LocatorTraining.parseProgressLine("L3LOCATOR_PROGRESS {not json") is None


def test_training_command_and_environment(slicerModules, tmp_path):
    _, L3LocatorTraining = slicerModules
    logic = L3LocatorTraining.L3LocatorTrainingLogic
    command = logic.trainingCommand(tmp_path / "data", tmp_path / "out", trials=3, epochs=2, folds=2, device="auto", resume=True)
    assert command[command.index("--trials") + 1 :][:1] == ["3"]
    assert "--device" not in command and "--resume" in command and "--small" not in command
    assert command[command.index("--output-dir") + 1] == str(tmp_path / "out")
    assert "--augmentation" not in command  # the paper's scheme unless asked
    augmented = logic.trainingCommand(tmp_path / "data", tmp_path / "out", trials=3, epochs=2, folds=2, augmentAllSlices=True)
    from l3locator.cli import build_parser

    parsed = build_parser().parse_args(augmented[augmented.index("train") :])
    assert parsed.augmentation == "all-slices" and build_parser().parse_args(command[command.index("train") :]).augmentation == "paper"
    environment = logic.processEnvironment()
    assert environment["PYTHONPATH"].split(os.pathsep)[0] == str(ROOT / "L3Locator")


@pytest.mark.slow
def test_training_runs_in_the_background_and_its_model_is_saved(slicerModules, volumeNode, phantom, tmp_path, monkeypatch):
    """The real ``l3locator train`` in a background process on two exported phantom cases."""
    _, L3LocatorTraining = slicerModules
    monkeypatch.setenv("L3LOCATOR_MODELS_DIR", str(tmp_path / "models"))
    logic = L3LocatorSceneLogic()
    markupNode = logic.placeL3Markup(volumeNode, sum(phantom.l3_range) // 2)
    for case in ("p1", "p2", "p3"):
        logic.exportLabel(volumeNode, markupNode, tmp_path / "data", caseName=case)
    trainingLogic = L3LocatorTraining.L3LocatorTrainingLogic()
    command = trainingLogic.trainingCommand(tmp_path / "data", tmp_path / "run", trials=1, epochs=1, folds=0, device="cpu", small=True)
    run = trainingLogic.startTraining(command)
    monitor = L3LocatorTraining.TrainingMonitor()
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
    assert logic.findL3(volumeNode, saved, device="cpu").num_slices == phantom.volume.num_slices
