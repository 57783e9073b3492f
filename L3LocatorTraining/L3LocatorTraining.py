"""L3LocatorTraining: train an L3Locator model on annotated cases, without freezing Slicer.

The training itself is the core library's ``l3locator train`` command (Bayesian optimisation of
the design parameters or a quick run with fixed ones, cross-validation, final model), from
random weights or adapting a model (the shipped one or a file) to the cases: the run then
compares the adapted model with the one it started from and says whether it is better. The Qt-free parts are in
``L3LocatorTrainingLib``: the command and its background process (``process``), its progress
lines (``monitor``), the training folder's summary counted in a thread (``summary``) and the
cross-validation report (``report``). The widget polls them with a timer, can cancel the run,
and saves the model where the L3Locator model selector lists it
(``L3LocatorLib.models.userModelsDirectory``). Python packages are installed on first use by
the installer both modules share (``L3LocatorLib.dependencies``).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Annotated

import qt
import vtk

import slicer
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from L3LocatorLib.dependencies import ensureDependencies
from L3LocatorLib.models import saveUserModel, userModelsDirectory
from L3LocatorTrainingLib import process, report
from L3LocatorTrainingLib.monitor import TrainingMonitor
from L3LocatorTrainingLib.process import DEVICES, START_FROM, TRAINING_MODES, TrainingRun
from L3LocatorTrainingLib.summary import FolderSummaryTask, summaryText

#: How often the widget reads the training process's output and the folder count (ms).
POLL_INTERVAL_MS = 500
#: The save button's text (a model not recommended over its parent gets another).
SAVE_MODEL_TEXT = "Save model for L3Locator"


#
# L3LocatorTraining
#


class L3LocatorTraining(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel and Help."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "L3 Locator Training"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = ["L3Locator"]
        self.parent.contributors = ["L3Locator contributors"]
        self.parent.helpText = """
Trains an L3Locator model on a folder of annotated CT cases (exported with the L3Locator module,
or CTs with a vertebra label map <case>_vertebrae.nii.gz, L3 = 22). Start from the shipped model
to adapt it to your scans (quick adapt: about 20 minutes on a CPU for 10 cases; the result is compared
with the shipped model on the same held-out cases and recommended only when it is better), from
another model file, or from scratch. Full optimisation tunes the design parameters by Bayesian
optimisation (objective 1/F1 of the L3 slices of held-out cases). The result is cross-validated
by case, and the final model can be saved for the L3Locator module.
Training runs in a separate process: Slicer stays usable, and the run can be cancelled.
"""
        self.parent.acknowledgementText = """
Training design after the imbalance-aware (oversampling, class weights), Bayesian-optimised ResNet50
slice classifier for L3 localisation in CT.
"""


#
# Parameter node
#


@parameterNodeWrapper
class L3LocatorTrainingParameterNode:
    """The module's state, saved with the scene.

    dataFolder: annotated cases.  startFrom, initModelPath (for "another model"), freezeLayers:
    where the weights start.  trainingMode: quick (fixed design parameters) or full optimisation.
    trials, epochs, folds, device, smallConfiguration: the budget.
    augmentAllSlices: augment every training slice, not only the oversampled L3 copies.
    outputFolder: where the run writes ("" = a new folder beside the user models).  resume:
    continue the run found in outputFolder.  modelName: name to save the model under.
    trainedModelPath, reportPath: what the last finished run produced.
    """

    dataFolder: Path
    startFrom: Annotated[str, Choice(list(START_FROM))] = "shipped model"
    initModelPath: Path
    trainingMode: Annotated[str, Choice(list(TRAINING_MODES))] = "quick adapt"
    freezeLayers: Annotated[int, WithinRange(0, 5)] = 0
    trials: Annotated[int, WithinRange(1, 1000)] = 30
    epochs: Annotated[int, WithinRange(1, 1000)] = 10
    folds: Annotated[int, WithinRange(0, 20)] = 5
    device: Annotated[str, Choice(list(DEVICES))] = "auto"
    smallConfiguration: bool = False
    augmentAllSlices: bool = False
    outputFolder: Path
    resume: bool = False
    modelName: str = ""
    trainedModelPath: str = ""
    reportPath: str = ""


#
# L3LocatorTrainingWidget
#


class L3LocatorTrainingWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: data folder and counts, budget, start/cancel with progress, results."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._run: TrainingRun | None = None
        self._monitor: TrainingMonitor | None = None
        self._summaryTask: FolderSummaryTask | None = None
        self._timer = None

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/L3LocatorTraining.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = L3LocatorTrainingLogic()

        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self.onPoll)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.countCasesButton.connect("clicked(bool)", self.onCountCases)
        self.ui.startButton.connect("clicked(bool)", self.onStart)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.showPlotButton.connect("clicked(bool)", self.onShowPlot)
        self.ui.saveModelButton.connect("clicked(bool)", self.onSaveModel)
        self.ui.outputFolderPathLineEdit.toolTip = (
            f"Where the run writes its trial log, models and report. Empty: a new folder in {self.logic.runsDirectory()}."
        )
        self.initializeParameterNode()

    def cleanup(self) -> None:
        if self._run is not None and self._run.isRunning():
            self._run.cancel()
        if self._timer is not None:
            self._timer.stop()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self.updateButtons()

    def updateButtons(self, caller=None, event=None) -> None:
        node = self._parameterNode
        running = self._run is not None and self._run.isRunning()
        counting = self._summaryTask is not None
        hasFolder = bool(node) and _isSet(node.dataFolder)
        fromFile = bool(node) and node.startFrom == "another model"
        hasStart = not fromFile or _isSet(node.initModelPath)
        self.ui.startButton.enabled = hasFolder and hasStart and not running
        self.ui.startButton.toolTip = (
            "Start training in the background" if hasFolder and hasStart
            else "Choose the training data folder first" if not hasFolder else "Choose the model file to start from"
        )
        self.ui.initModelPathLineEdit.enabled = fromFile
        self.ui.freezeLayersSpinBox.enabled = bool(node) and node.startFrom != "scratch"
        self.ui.trialsSpinBox.enabled = bool(node) and node.trainingMode != "quick adapt"
        self.ui.cancelButton.enabled = running
        self.ui.countCasesButton.enabled = hasFolder and not counting
        self.ui.saveModelButton.enabled = bool(node) and bool(node.trainedModelPath) and not running
        self.ui.showPlotButton.enabled = bool(node) and bool(node.reportPath) and not running

    # --- data -----------------------------------------------------------------------------------
    def onCountCases(self) -> None:
        """Count the folder's cases in the background (vertebra maps take a while to read)."""
        with slicer.util.tryWithErrorDisplay("Could not read the training folder."):
            if not ensureDependencies("L3LocatorTraining"):
                return
            self._summaryTask = self.logic.summarizeFolder(self._parameterNode.dataFolder)
            self.ui.folderSummaryLabel.text = "Counting…"
            self._timer.start()
            self.updateButtons()

    def onSummaryFinished(self) -> None:
        task, self._summaryTask = self._summaryTask, None
        self.updateButtons()
        self.ui.folderSummaryLabel.text = ""
        with slicer.util.tryWithErrorDisplay("Could not read the training folder."):
            self.ui.folderSummaryLabel.text = summaryText(task.result())

    # --- training ---------------------------------------------------------------------------------
    def onStart(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not start training."):
            if not ensureDependencies("L3LocatorTraining"):
                return
            node = self._parameterNode
            outputFolder = Path(node.outputFolder) if _isSet(node.outputFolder) else self.logic.newRunDirectory()
            node.outputFolder = outputFolder
            node.trainedModelPath = ""
            node.reportPath = ""
            command = self.logic.trainingCommand(
                node.dataFolder, outputFolder, trials=node.trials, epochs=node.epochs, folds=node.folds,
                device=node.device, small=node.smallConfiguration, resume=node.resume,
                augmentAllSlices=node.augmentAllSlices, startFrom=node.startFrom, initModelPath=node.initModelPath,
                trainingMode=node.trainingMode, freezeLayers=node.freezeLayers,
            )
            self.ui.logTextEdit.clear()
            self.ui.saveModelButton.text = SAVE_MODEL_TEXT
            self.ui.resultsLabel.text = ""
            self.ui.savedModelLabel.text = ""
            self._monitor = TrainingMonitor()
            self._run = self.logic.startTraining(command)
            self.appendLog("$ " + " ".join(command))
            self.ui.statusLabel.text = "Starting…"
            self.ui.progressBar.setValue(0)
            self._timer.start()
            self.updateButtons()

    def onPoll(self) -> None:
        """Timer slot: show what the training process printed and finish a run or a folder
        count that has ended; the timer stops when neither is left."""
        if self._summaryTask is not None and self._summaryTask.done():
            self.onSummaryFinished()
        if self._run is not None:
            self.pollRun()
        if self._run is None and self._summaryTask is None:
            self._timer.stop()

    def pollRun(self) -> None:
        for line in self._run.readLines():
            if self._monitor.consume(line) is None:
                self.appendLog(line)
        self.ui.statusLabel.text = self._monitor.statusText()
        self.ui.progressBar.setValue(int(round(100 * self._monitor.fraction())))
        if self._run.isRunning():
            return
        returnCode, cancelled = self._run.returnCode(), self._run.cancelled
        self._run = None
        self.onRunFinished(returnCode, cancelled)

    def onRunFinished(self, returnCode: int, cancelled: bool) -> None:
        node = self._parameterNode
        if cancelled:
            self.ui.statusLabel.text = "Cancelled. Tick 'Continue the run' and start again to resume it."
        elif returnCode != 0 or not self._monitor.modelPath:
            self.ui.statusLabel.text = f"Training failed (exit code {returnCode}); see the log."
            slicer.util.errorDisplay(f"Training failed (exit code {returnCode}).", detailedText="\n".join(self._monitor.lastLines()))
        else:
            self.ui.progressBar.setValue(100)
            node.trainedModelPath = self._monitor.modelPath
            node.reportPath = self._monitor.reportPath or ""
            notRecommended = self._monitor.recommended is False
            if not node.modelName and not notRecommended:  # a model worse than its parent is not offered as the one to use
                node.modelName = f"L3Locator-{datetime.now():%Y%m%d-%H%M}"
            parent = (self._monitor.parentModel or {}).get("name", "")
            self.ui.saveModelButton.text = "Save anyway (not recommended)" if notRecommended else SAVE_MODEL_TEXT
            self.ui.statusLabel.text = (f"Done, but not recommended over {parent}. Model: {self._monitor.modelPath}" if notRecommended
                                        else f"Done. Model: {self._monitor.modelPath}")
            if node.reportPath:
                self.ui.resultsLabel.text = self.logic.reportText(self.logic.readReport(node.reportPath))
                self.onShowPlot()
            else:
                self.ui.resultsLabel.text = "No cross-validation was run (folds < 2)."
            if self._monitor.comparison:
                self.ui.resultsLabel.text = "\n".join([self.ui.resultsLabel.text, self.logic.comparisonText(self._monitor.comparison)])
            if self._monitor.warnings:
                self.ui.resultsLabel.text = "\n".join([self.ui.resultsLabel.text, *(f"Warning: {w}" for w in self._monitor.warnings)])
        self.updateButtons()

    def onCancel(self) -> None:
        if self._run is not None:
            self.ui.statusLabel.text = "Cancelling…"
            self._run.cancel()

    def appendLog(self, line: str) -> None:
        self.ui.logTextEdit.appendPlainText(line)

    # --- results ----------------------------------------------------------------------------------
    def onShowPlot(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not show the cross-validation result."):
            chartNode = self.logic.showReportPlot(self.logic.readReport(self._parameterNode.reportPath))
            slicer.modules.plots.logic().ShowChartInLayout(chartNode)

    def onSaveModel(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not save the model."):
            node = self._parameterNode
            path = saveUserModel(Path(node.trainedModelPath), node.modelName or Path(node.trainedModelPath).stem)
            self.ui.savedModelLabel.text = f"Saved as {path}; the L3Locator module lists it as '{path.stem}'."


def _isSet(path) -> bool:
    """Whether a parameter node path holds a real choice (an unset path reads as '.')."""
    return bool(path) and str(path) not in ("", ".")


#
# L3LocatorTrainingLogic
#


class L3LocatorTrainingLogic(ScriptedLoadableModuleLogic):
    """Count training data, run ``l3locator train`` in the background, read and show its report.

    No Qt: a thin composition of ``L3LocatorTrainingLib`` (the widget polls what it starts).
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return L3LocatorTrainingParameterNode(super().getParameterNode())

    @staticmethod
    def summarizeFolder(folder: str | Path) -> FolderSummaryTask:
        """Start counting the cases, L3 and other slices of a training folder (in a thread)."""
        return FolderSummaryTask(folder)

    @staticmethod
    def runsDirectory() -> Path:
        """Default parent folder of training runs: beside the user models folder."""
        return userModelsDirectory().parent / "training-runs"

    def newRunDirectory(self) -> Path:
        return self.runsDirectory() / datetime.now().strftime("run-%Y%m%d-%H%M%S")

    trainingCommand = staticmethod(process.trainingCommand)
    startTraining = staticmethod(TrainingRun.start)
    readReport = staticmethod(report.readReport)
    reportText = staticmethod(report.reportText)
    comparisonText = staticmethod(report.comparisonText)
    showReportPlot = staticmethod(report.showReportPlot)


#
# L3LocatorTrainingTest
#


class L3LocatorTrainingTest(ScriptedLoadableModuleTest):
    """Self-test without training a network: progress parsing, the background process with
    cancel, the command line, the folder summary and the results plot (no download, seconds)."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_ProgressAndProcess()
        self.setUp()
        self.test_FolderSummary()
        self.setUp()
        self.test_ReportPlot()

    def test_ProgressAndProcess(self) -> None:
        self.delayDisplay("Background process and progress lines")
        from l3locator.training.progress import PREFIX

        record = {"stage": "trial_end", "trial": 2, "trials": 5, "epoch": None, "epochs": 3, "loss": None,
                  "objective": 1.5, "best_objective": 1.25, "eta_s": 30.0, "message": ""}
        script = f"print('loading'); print('{PREFIX} ' + {json.dumps(json.dumps(record))}, flush=True)"
        run = TrainingRun([sys.executable, "-c", script])
        self.assertEqual(run.wait(60), 0)
        monitor = TrainingMonitor()
        records = [r for r in map(monitor.consume, run.readLines()) if r is not None]
        self.assertEqual(records, [record])
        self.assertEqual(monitor.lastLines(), ["loading"])
        self.assertIn("Trial 2 of 5", monitor.statusText())
        self.assertIn("best F1 0.800", monitor.statusText())

        slow = TrainingRun([sys.executable, "-c", "import time; time.sleep(60)"])
        started = time.monotonic()
        slow.cancel()
        self.assertTrue(slow.cancelled)
        self.assertNotEqual(slow.wait(10), 0)
        self.assertLess(time.monotonic() - started, 10.0)

        command = L3LocatorTrainingLogic.trainingCommand("data", "out", trials=3, epochs=2, folds=0, device="cpu", small=True)
        self.assertEqual(command[1:4], ["-m", "l3locator.cli", "train"])
        self.assertEqual(command[command.index("--progress") + 1], "json")
        self.assertIn("--small", command)
        self.assertNotIn("--init-model", command)
        adapt = L3LocatorTrainingLogic.trainingCommand("data", "out", trials=3, epochs=2, folds=5, startFrom="shipped model",
                                                       trainingMode="quick adapt", freezeLayers=2)
        self.assertEqual(adapt[adapt.index("--init-model") + 1], "default")
        self.assertEqual(adapt[adapt.index("--freeze-layers") + 1], "2")
        self.assertIn("--quick", adapt)
        self.assertNotIn("--trials", adapt)
        self.delayDisplay("Background process and progress lines: passed")

    def test_FolderSummary(self) -> None:
        self.delayDisplay("Training folder summary")
        from l3locator.labels import L3Label, write_label

        with tempfile.TemporaryDirectory() as folder:
            for case, l3Range in (("p1__a", (10, 14)), ("p2__a", (20, 22))):
                Path(folder, f"{case}.nrrd").touch()  # the summary reads labels only, never the CT
                write_label(L3Label(case, f"{case}.nrrd", sum(l3Range) // 2, l3Range, "manual", num_slices=50), Path(folder, f"{case}.l3.json"))
            Path(folder, "unlabelled.nii.gz").touch()
            task = L3LocatorTrainingLogic.summarizeFolder(folder)
            self.assertTrue(task.wait(60))
            folderSummary = task.result()
        self.assertEqual((folderSummary["cases"], folderSummary["patients"], folderSummary["l3_slices"]), (2, 2, 8))
        self.assertEqual((folderSummary["other_slices"], folderSummary["unlabelled_files"]), (92, ["unlabelled.nii.gz"]))
        self.assertTrue(summaryText(folderSummary).startswith("2 case(s) of 2 patient(s): 8 L3 slices, 92 other slices"))
        self.delayDisplay("Training folder summary: passed")

    def test_ReportPlot(self) -> None:
        self.delayDisplay("Cross-validation report plot")
        cvReport = {
            "summary": {"cases": 3, "failures": 1, "error_slices": {"mean": 1.0, "sd": 1.0, "median": 1.0, "max": 2.0},
                        "within_2": 1.0, "slice_f1": 0.9},
            "cases": [{"case": f"c{i}", "true_index": 10.0 + i, "predicted_index": 10 + i + (i % 2), "failure": i == 2} for i in range(3)],
        }
        logic = L3LocatorTrainingLogic()
        chartNode = logic.showReportPlot(cvReport)
        self.assertEqual(chartNode.GetNumberOfPlotSeriesNodes(), 2)
        tableNode = chartNode.GetNthPlotSeriesNode(0).GetTableNode()
        self.assertEqual(tableNode.GetNumberOfRows(), 2)  # the case without an answer is not a point
        self.assertIn("3 case(s)", logic.reportText(cvReport))
        self.assertIn("1.00 ± 1.00", logic.reportText(cvReport))
        self.assertIn("1 case(s) without an answer", logic.reportText(cvReport))
        comparison = {"parent_model": {"name": "default.pt", "sha256": "0" * 64}, "cases": 3, "verdict": "worse", "recommended": False,
                      "parent": {"mean_error_slices": 1.0, "failures": 0}, "adapted": {"mean_error_slices": 2.0, "failures": 1},
                      "cases_improved": 0, "cases_worse": 2}
        self.assertIn("NOT RECOMMENDED: the adapted model is worse than default.pt", logic.comparisonText(comparison))
        self.delayDisplay("Cross-validation report plot: passed")
