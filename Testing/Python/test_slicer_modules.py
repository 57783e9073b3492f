"""The two Slicer modules on Slicer's own Python layer, headless.

Slicer's real ``ScriptedLoadableModule``, typed parameter node wrapper with its GUI connectors,
and ``slicer.packaging`` (``../shared/vendor/slicer-python``), with ``slicer-core``'s MRML and a
test-only ``qt``/``ctk`` shim over PySide6 (``slicer_shim``): the modules are registered, their
panels built from the ``.ui`` files, the parameter nodes bound to the widgets by
``SlicerParameterName``, and the buttons clicked. Skipped where ``../shared`` is absent.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel")
pytest.importorskip("PySide6.QtUiTools", reason="needs PySide6 (PySide6-Essentials)")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import slicer_shim  # noqa: E402

if not slicer_shim.available():
    pytest.skip(f"Slicer's Python layer not found at {slicer_shim.SLICER_PYTHON}", allow_module_level=True)
from slicer_shim.fixtures import L3Locator, L3LocatorTraining, makeWidget, session, waitFor  # noqa: E402, F401 (fixtures)


def writeLabelledCase(folder: Path, case: str, l3Range: tuple[int, int], numSlices: int = 40) -> None:
    """A case as the folder summary sees it: a label beside a (never read) CT file."""
    from l3locator.labels import L3Label, write_label

    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{case}.nrrd").touch()
    write_label(L3Label(case, f"{case}.nrrd", sum(l3Range) // 2, l3Range, "manual", num_slices=numSlices), folder / f"{case}.l3.json")


# --- registration and parameter nodes ---------------------------------------------------------------

def test_modules_register_as_in_slicer(session, L3Locator, L3LocatorTraining):
    finder, trainer = slicer.modules.l3locator, slicer.modules.l3locatortraining
    assert (finder.title, finder.categories, finder.dependencies) == ("L3 Locator", ["Quantification"], ["Markups", "Plots"])
    assert (trainer.title, trainer.dependencies) == ("L3 Locator Training", ["L3Locator"])
    assert not finder.icon.isNull() and not trainer.icon.isNull()  # Resources/Icons/<module>.png, found by Slicer's base class
    assert set(slicer.selfTests) >= {"L3Locator", "L3LocatorTraining"}
    assert isinstance(finder.instance, slicer.ScriptedLoadableModule.ScriptedLoadableModule)


def test_parameter_nodes_validate_and_store_their_values(session, L3Locator, L3LocatorTraining):
    session.scene.Clear(0)
    logic = L3LocatorTraining.L3LocatorTrainingLogic()
    node = logic.getParameterNode()
    assert (node.trials, node.epochs, node.folds, node.device, node.smallConfiguration, node.modelName) == (30, 10, 5, "auto", False, "")
    node.trials, node.device = 7, "cpu"
    stored = node.parameterNode
    assert (stored.GetParameter("trials"), stored.GetParameter("device"), stored.GetAttribute("ModuleName")) == ("7", "cpu", "L3LocatorTraining")
    again = logic.getParameterNode()  # the scene's singleton, wrapped anew
    assert again.parameterNode is stored and (again.trials, again.device) == (7, "cpu")
    with pytest.raises(ValueError):
        node.trials = 0  # WithinRange(1, 1000)
    with pytest.raises(ValueError):
        node.device = "tpu"  # Choice(DEVICES)

    finderNode = L3Locator.L3LocatorLogic().getParameterNode()
    volumeNode = L3Locator.syntheticCT()
    finderNode.inputVolume = volumeNode
    assert finderNode.parameterNode.GetNodeReferenceID("inputVolume") == volumeNode.GetID()
    slicer.mrmlScene.RemoveNode(volumeNode)
    assert finderNode.inputVolume is None


# --- the L3Locator panel ---------------------------------------------------------------------------

def test_l3locator_panel_and_parameter_node_follow_each_other(makeWidget, L3Locator, tmp_path):
    widget = makeWidget(L3Locator, "L3Locator")
    ui, node = widget.ui, widget._parameterNode
    assert not ui.findL3Button.enabled and ui.findL3Button.toolTip == "Select an input CT volume"
    assert ui.modelComboBox.itemText(0) == "Default (shipped)" and node.modelPath == ui.modelComboBox.itemData(0)

    volumeNode = L3Locator.syntheticCT(name="CT abdomen")  # the selector picks the scene's only volume
    assert ui.inputSelector.currentNode() is volumeNode and node.inputVolume is volumeNode
    assert ui.findL3Button.enabled and ui.placeL3Button.enabled and not ui.exportButton.enabled
    assert ui.caseNameLineEdit.placeholderText == "CT abdomen"

    ui.caseNameLineEdit.text = "case 1"
    ui.overwriteCheckBox.checked = True
    ui.trainingFolderPathLineEdit.currentPath = str(tmp_path)
    assert (node.caseName, node.overwriteExisting, node.trainingFolder) == ("case 1", True, tmp_path)
    node.annotator = "jdoe"
    assert ui.annotatorLineEdit.text == "jdoe"

    markupNode = L3Locator.markups.placeL3Markup(volumeNode, 12)
    node.l3Markup = markupNode
    assert ui.markupSelector.currentNode() is markupNode and ui.markupPlaceWidget.currentNode() is markupNode
    assert ui.jumpToL3Button.enabled and ui.exportButton.enabled


def test_find_l3_correct_and_export_from_the_panel(session, makeWidget, L3Locator, tmp_path):
    from l3locator import LabelError
    from l3locator.labels import read_label

    widget = makeWidget(L3Locator, "L3Locator")
    ui, node = widget.ui, widget._parameterNode
    modelPath = str(L3Locator.fixedAnswerModel(10.0).save(tmp_path / "everything-is-L3.pt"))
    widget.selectModelPath(modelPath)
    assert ui.modelComboBox.currentText == "everything-is-L3.pt" and node.modelPath == modelPath
    volumeNode = L3Locator.syntheticCT(numSlices=40)
    redSlice = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSliceNode")  # a view to jump to the L3 point
    redSlice.SetLayoutName("Red")
    redSlice.SetOrientationToAxial()

    ui.findL3Button.click()
    assert ui.resultLabel.text.startswith("L3 at slice 19 (range 0–39 of 40)")
    from l3locator.flags import explain

    flags = L3Locator.markups.getL3Markup(volumeNode).GetAttribute("L3Locator.Flags")
    assert flags  # the whole scan is one run touching both ends: flagged
    assert ui.resultLabel.text.splitlines()[1:] == explain(flags.split(","))  # each flag in words, under the result
    markupNode = L3Locator.markups.getL3Markup(volumeNode)
    assert node.l3Markup is markupNode and ui.markupSelector.currentNode() is markupNode
    assert ui.progressBar.maximum == 40 and not ui.cancelButton.enabled and ui.findL3Button.enabled  # progress came in slices
    assert redSlice.GetSliceOffset() == pytest.approx(L3Locator.markups.markupPositionLocal(volumeNode, markupNode)[2])
    selection = slicer.mrmlScene.GetNodeByID("vtkMRMLSelectionNodeSingleton")
    assert selection.GetActivePlotChartID() == L3Locator.plot.getProbabilityChart(volumeNode).GetID()  # the plot is shown

    # Correct the point, then export; a second export is refused unless replacing is ticked.
    markupNode.SetNthControlPointPositionWorld(0, *L3Locator.ctVolumeFromNode(volumeNode).slice_center_ras(24).tolist())
    ui.trainingFolderPathLineEdit.currentPath = str(tmp_path / "training")
    ui.caseNameLineEdit.text = "case 1"
    ui.exportButton.click()
    assert ui.exportStatusLabel.text.startswith("Exported case_1: L3 slice 24 (range 21–27), source corrected")
    assert read_label(tmp_path / "training" / "case_1.l3.json").model_slice_index == 19
    with pytest.raises(LabelError, match="already exists"):
        widget.onExportLabel()
    ui.overwriteCheckBox.checked = True
    ui.exportButton.click()
    assert ui.exportStatusLabel.text.endswith("replaced case_1.l3.json, case_1.nrrd")

    # Place by hand: the point is emptied and the place widget in place mode on it.
    ui.placeL3Button.click()
    interaction = slicer.mrmlScene.GetNodeByID("vtkMRMLInteractionNodeSingleton")
    assert markupNode.GetNumberOfControlPoints() == 0 and ui.markupPlaceWidget.placeModeEnabled()
    assert interaction.GetCurrentInteractionMode() == interaction.Place and selection.GetActivePlaceNodeID() == markupNode.GetID()


def test_find_l3_can_be_cancelled_from_the_panel(makeWidget, L3Locator, tmp_path):
    widget = makeWidget(L3Locator, "L3Locator")
    widget.selectModelPath(str(L3Locator.fixedAnswerModel(10.0).save(tmp_path / "m.pt")))
    volumeNode = L3Locator.syntheticCT()
    widget.onProgress = lambda done, total: widget.ui.cancelButton.click()  # Cancel clicked while scoring
    widget.ui.findL3Button.click()
    assert widget.ui.resultLabel.text == "Cancelled."
    assert L3Locator.markups.getL3Markup(volumeNode) is None and widget.ui.findL3Button.enabled


# --- the L3LocatorTraining panel ---------------------------------------------------------------------

def test_training_panel_binds_the_budget(makeWidget, L3LocatorTraining, tmp_path):
    widget = makeWidget(L3LocatorTraining, "L3LocatorTraining")
    ui, node = widget.ui, widget._parameterNode
    assert not ui.startButton.enabled and not ui.countCasesButton.enabled
    ui.dataFolderPathLineEdit.currentPath = str(tmp_path)
    assert node.dataFolder == tmp_path and ui.startButton.enabled and ui.countCasesButton.enabled

    assert [ui.deviceComboBox.itemText(i) for i in range(ui.deviceComboBox.count)] == ["auto", "cpu", "cuda"]
    ui.deviceComboBox.currentIndex = 2
    ui.trialsSpinBox.value = 7
    ui.smallCheckBox.checked = True
    assert (node.device, node.trials, node.smallConfiguration) == ("cuda", 7, True)
    node.epochs = 3
    assert ui.epochsSpinBox.value == 3
    assert (ui.trialsSpinBox.minimum, ui.trialsSpinBox.maximum, ui.foldsSpinBox.minimum) == (1, 1000, 0)  # from WithinRange


def test_training_panel_counts_the_folder_in_the_background(session, makeWidget, L3LocatorTraining, tmp_path):
    for case, l3Range in (("p1__a", (10, 14)), ("p2__a", (20, 22))):
        writeLabelledCase(tmp_path, case, l3Range)
    widget = makeWidget(L3LocatorTraining, "L3LocatorTraining")
    widget.ui.dataFolderPathLineEdit.currentPath = str(tmp_path)
    widget.ui.countCasesButton.click()
    assert widget.ui.folderSummaryLabel.text == "Counting…" or widget._summaryTask is not None
    waitFor(session, lambda: widget._summaryTask is None)
    assert widget.ui.folderSummaryLabel.text == "2 case(s) of 2 patient(s): 8 L3 slices, 72 other slices."
    assert widget.ui.countCasesButton.enabled and not widget._timer.isActive()


def fakeTrainingCommand(tmp_path: Path, exitCode: int = 0):
    """A stand-in for ``l3locator train``: prints progress lines and a ``done`` line like the
    real command, writes a report, and exits with ``exitCode``."""
    model, reportFile = tmp_path / "run" / "final_model.pt", tmp_path / "run" / "cv_report.json"
    report = {"summary": {"cases": 2, "failures": 0, "error_slices": {"mean": 0.5, "sd": 0.5, "median": 0.5, "max": 1.0},
                          "within_2": 1.0, "slice_f1": 0.8},
              "cases": [{"case": "a", "true_index": 12.0, "predicted_index": 12, "failure": False},
                        {"case": "b", "true_index": 21.0, "predicted_index": 22, "failure": False}]}
    epoch = {"stage": "epoch", "trial": 1, "trials": 2, "epoch": 1, "epochs": 1, "loss": 0.4, "objective": None,
             "best_objective": None, "eta_s": 5.0, "message": ""}
    done = {"stage": "done", "trial": None, "trials": 2, "epoch": None, "epochs": None, "loss": None, "objective": None,
            "best_objective": 1.25, "eta_s": 0.0, "message": "", "model": str(model), "report": str(reportFile),
            "validated": False, "warnings": ["fold 2 found no L3 in any case"]}
    script = "\n".join([
        "import json, pathlib, sys",
        f"pathlib.Path({str(model)!r}).write_bytes(b'model')",
        f"pathlib.Path({str(reportFile)!r}).write_text({json.dumps(json.dumps(report))})",
        "print('preparing slices 1/2', flush=True)",
        f"print('L3LOCATOR_PROGRESS ' + {json.dumps(json.dumps(epoch))}, flush=True)",
        f"print('L3LOCATOR_PROGRESS ' + {json.dumps(json.dumps(done))}, flush=True)" if exitCode == 0 else "print('CUDA out of memory', flush=True)",
        f"sys.exit({exitCode})",
    ])
    return lambda *args, **kwargs: [sys.executable, "-c", script, "--output-dir", str(tmp_path / "run")]


def test_training_runs_in_the_background_and_the_model_is_saved(session, makeWidget, L3LocatorTraining, tmp_path, monkeypatch):
    monkeypatch.setenv("L3LOCATOR_MODELS_DIR", str(tmp_path / "models"))
    widget = makeWidget(L3LocatorTraining, "L3LocatorTraining")
    ui, node = widget.ui, widget._parameterNode
    ui.dataFolderPathLineEdit.currentPath = str(tmp_path / "data")
    ui.outputFolderPathLineEdit.currentPath = str(tmp_path / "run")
    widget.logic.trainingCommand = fakeTrainingCommand(tmp_path)
    ui.startButton.click()
    assert ui.cancelButton.enabled and not ui.startButton.enabled
    waitFor(session, lambda: widget._run is None)

    assert ui.statusLabel.text == f"Done. Model: {tmp_path / 'run' / 'final_model.pt'}" and ui.progressBar.value == 100
    log = ui.logTextEdit.plainText.splitlines()
    assert log[0].startswith("$ ") and log[-1] == "preparing slices 1/2"  # the command, then the lines that are not progress
    assert not any(line.startswith("L3LOCATOR_PROGRESS") for line in log)
    assert ui.resultsLabel.text.splitlines() == [
        "2 case(s): L3 slice error 0.50 ± 0.50 slices (median 0.50, max 1.0); 100% within 2 slices; slice F1 0.800.",
        "Warning: fold 2 found no L3 in any case",
    ]
    assert node.trainedModelPath == str(tmp_path / "run" / "final_model.pt") and node.modelName.startswith("L3Locator-")
    assert ui.saveModelButton.enabled and ui.showPlotButton.enabled
    node.modelName = "lab model"
    ui.saveModelButton.click()
    assert (tmp_path / "models" / "lab_model.pt").read_bytes() == b"model"
    assert ui.savedModelLabel.text.endswith("the L3Locator module lists it as 'lab_model'.")


def test_a_failed_training_run_is_reported(session, makeWidget, L3LocatorTraining, tmp_path):
    widget = makeWidget(L3LocatorTraining, "L3LocatorTraining")
    widget.ui.dataFolderPathLineEdit.currentPath = str(tmp_path / "data")
    widget.ui.outputFolderPathLineEdit.currentPath = str(tmp_path / "run")
    widget.logic.trainingCommand = fakeTrainingCommand(tmp_path, exitCode=3)
    widget.ui.startButton.click()
    waitFor(session, lambda: widget._run is None)
    assert widget.ui.statusLabel.text == "Training failed (exit code 3); see the log."
    assert widget._parameterNode.trainedModelPath == "" and not widget.ui.saveModelButton.enabled
    assert widget._monitor.lastLines() == ["preparing slices 1/2", "CUDA out of memory"]


# --- the shared dependency installer (slicer.packaging.pip_ensure) --------------------------------------

@pytest.fixture
def installer(session, L3Locator, monkeypatch):
    """``L3LocatorLib.dependencies`` with pip replaced by a recorder and the application out of
    testing mode (in testing mode ``pip_ensure`` installs nothing and asks nothing)."""
    from L3LocatorLib import dependencies

    calls = {"pip": [], "asked": [], "warned": []}
    monkeypatch.setattr(slicer.packaging, "pip_install", lambda requirements, **kwargs: calls["pip"].append(requirements))
    monkeypatch.setattr(session.app, "testingEnabled", lambda: False)
    answer = {"ok": False}

    def confirm(text, windowTitle=None, **kwargs):
        calls["asked"].append((windowTitle, kwargs.get("detailedText", "")))
        return answer["ok"]

    monkeypatch.setattr(slicer.util, "confirmOkCancelDisplay", confirm)
    monkeypatch.setattr(slicer.util, "warningDisplay", lambda text, **kwargs: calls["warned"].append(text))
    return dependencies, calls, answer


def test_installed_requirements_ask_nothing(installer):
    dependencies, calls, _ = installer
    assert dependencies.REQUIREMENTS_FILE == Path(slicer.modules.l3locator.path).parent / "Resources" / "requirements.txt"
    assert dependencies.ensureDependencies("L3Locator") is True
    assert calls == {"pip": [], "asked": [], "warned": []}


def test_missing_requirements_are_installed_only_when_the_user_agrees(installer, tmp_path):
    dependencies, calls, answer = installer
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("# comment\nnumpy>=1.0\nl3locator-test-missing-package>=1.0\n")
    assert dependencies.ensureDependencies("L3LocatorTraining", requirements) is False
    assert calls["asked"] == [("L3LocatorTraining - Install Python Packages", "- l3locator-test-missing-package>=1.0")]
    assert calls["pip"] == [] and "l3locator-test-missing-package>=1.0" in calls["warned"][0]

    answer["ok"] = True
    assert dependencies.ensureDependencies("L3LocatorTraining", requirements) is True
    assert calls["pip"] == [["l3locator-test-missing-package>=1.0"]]


def test_pytorch_comes_from_the_pytorch_extension_when_present(installer, monkeypatch, tmp_path):
    dependencies, calls, _ = installer
    asked = []

    class PyTorchUtilsLogic:
        def torchInstalled(self):
            return False

        def installTorch(self, **kwargs):
            asked.append(kwargs)
            return None  # the user declined

    monkeypatch.setitem(sys.modules, "PyTorchUtils", type(sys)("PyTorchUtils"))
    sys.modules["PyTorchUtils"].PyTorchUtilsLogic = PyTorchUtilsLogic
    assert dependencies.ensureDependencies("L3Locator") is False
    assert asked == [{"askConfirmation": True, "torchVersionRequirement": ">=2.0", "torchvisionVersionRequirement": ">=0.15"}]
    assert calls["warned"] == ["L3Locator needs PyTorch; it was not installed."] and calls["pip"] == []


# --- the self-tests, run as Slicer's SelfTests module runs them ----------------------------------------------

@pytest.mark.parametrize("moduleName", ["L3Locator", "L3LocatorTraining"])
def test_module_self_test_passes(session, L3Locator, L3LocatorTraining, moduleName):
    slicer.selfTests[moduleName](msec=0)


def test_self_test_volume_is_a_ct_the_core_accepts(session, L3Locator):
    from l3locator.reading import check_volume

    session.scene.Clear(0)
    volume = L3Locator.ctVolumeFromNode(L3Locator.syntheticCT())
    check_volume(volume)
    assert volume.metadata["looks_like_ct"] and np.isclose(volume.slice_thickness, 5.0)
    assert os.path.basename(slicer.modules.l3locator.path) == "L3Locator.py"
