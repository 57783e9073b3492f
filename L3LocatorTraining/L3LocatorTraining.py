"""L3LocatorTraining: train an L3Locator model on annotated cases, without freezing Slicer.

The training itself is the core library's ``l3locator train`` command (Bayesian optimisation of
the design parameters, cross-validation, final model). This module runs it in a background
Python process, reads its ``L3LOCATOR_PROGRESS`` lines through a queue polled by a timer, can
cancel it, shows the cross-validation result, and saves the model where the L3Locator model
selector lists it (``L3LocatorLib.models.userModelsDirectory``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

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

from L3LocatorLib.models import saveUserModel, userModelsDirectory

PROGRESS_PREFIX = "L3LOCATOR_PROGRESS"
DEVICES = ("auto", "cpu", "cuda")
#: How often the widget reads the training process's output (ms).
POLL_INTERVAL_MS = 500


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
or CTs with a vertebra label map <case>_vertebrae.nii.gz, L3 = 22). The design parameters are
optimised by Bayesian optimisation (objective 1/F1 of the L3 slices of held-out cases), the
result is cross-validated by case, and the final model can be saved for the L3Locator module.
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

    dataFolder: annotated cases.  trials, epochs, folds, device, smallConfiguration: the budget.
    augmentAllSlices: augment every training slice, not only the oversampled L3 copies.
    outputFolder: where the run writes ("" = a new folder beside the user models).  resume:
    continue the run found in outputFolder.  modelName: name to save the model under.
    trainedModelPath, reportPath: what the last finished run produced.
    """

    dataFolder: Path
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
        hasFolder = bool(node) and _isSet(node.dataFolder)
        self.ui.startButton.enabled = hasFolder and not running
        self.ui.startButton.toolTip = "Start training in the background" if hasFolder else "Choose the training data folder first"
        self.ui.cancelButton.enabled = running
        self.ui.countCasesButton.enabled = hasFolder
        self.ui.saveModelButton.enabled = bool(node) and bool(node.trainedModelPath) and not running
        self.ui.showPlotButton.enabled = bool(node) and bool(node.reportPath) and not running

    # --- data -----------------------------------------------------------------------------------
    def onCountCases(self) -> None:
        self.ui.folderSummaryLabel.text = ""
        with slicer.util.tryWithErrorDisplay("Could not read the training folder.", waitCursor=True):
            if ensureTrainingDependencies():
                self.ui.folderSummaryLabel.text = self.logic.summarizeFolder(self._parameterNode.dataFolder).text()

    # --- training ---------------------------------------------------------------------------------
    def onStart(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not start training."):
            if not ensureTrainingDependencies():
                return
            node = self._parameterNode
            outputFolder = Path(node.outputFolder) if _isSet(node.outputFolder) else self.logic.newRunDirectory()
            node.outputFolder = outputFolder
            node.trainedModelPath = ""
            node.reportPath = ""
            command = self.logic.trainingCommand(
                node.dataFolder, outputFolder, trials=node.trials, epochs=node.epochs, folds=node.folds,
                device=node.device, small=node.smallConfiguration, resume=node.resume,
                augmentAllSlices=node.augmentAllSlices,
            )
            self.ui.logTextEdit.clear()
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
        """Timer slot: show what the training process printed; finish when it has ended."""
        if self._run is None:
            self._timer.stop()
            return
        for line in self._run.readLines():
            if self._monitor.consume(line) is None:
                self.appendLog(line)
        self.ui.statusLabel.text = self._monitor.statusText()
        self.ui.progressBar.setValue(int(round(100 * self._monitor.fraction())))
        if self._run.isRunning():
            return
        self._timer.stop()
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
            if not node.modelName:
                node.modelName = f"L3Locator-{datetime.now():%Y%m%d-%H%M}"
            self.ui.statusLabel.text = f"Done. Model: {self._monitor.modelPath}"
            if node.reportPath:
                report = self.logic.readReport(node.reportPath)
                self.ui.resultsLabel.text = self.logic.reportText(report)
                self.onShowPlot()
            else:
                self.ui.resultsLabel.text = "No cross-validation was run (folds < 2)."
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
            report = self.logic.readReport(self._parameterNode.reportPath)
            chartNode = self.logic.showReportPlot(report)
            slicer.modules.plots.logic().ShowChartInLayout(chartNode)

    def onSaveModel(self) -> None:
        with slicer.util.tryWithErrorDisplay("Could not save the model."):
            node = self._parameterNode
            path = saveUserModel(Path(node.trainedModelPath), node.modelName or Path(node.trainedModelPath).stem)
            self.ui.savedModelLabel.text = f"Saved as {path}; the L3Locator module lists it as '{path.stem}'."


def _isSet(path) -> bool:
    """Whether a parameter node path holds a real choice (an unset path reads as '.')."""
    return bool(path) and str(path) not in ("", ".")


def ensureTrainingDependencies() -> bool:
    """The L3Locator module's first-use dependency check (same requirements file)."""
    from L3Locator import REQUIREMENTS_FILE, ensurePythonRequirements

    return ensurePythonRequirements(REQUIREMENTS_FILE, requester="L3LocatorTraining")


#
# Background process and its progress (Qt-free)
#


def parseProgressLine(line: str) -> dict[str, Any] | None:
    """The record of an ``L3LOCATOR_PROGRESS {json}`` line, or None for any other line."""
    text = line.strip()
    if not text.startswith(PROGRESS_PREFIX + " "):
        return None
    try:
        record = json.loads(text[len(PROGRESS_PREFIX) + 1 :])
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "stage" in record else None


class TrainingRun:
    """A command running in the background, its output lines collected by a reader thread.

    The thread only reads and queues lines; the caller (the widget's timer, on Slicer's main
    thread) takes them with :meth:`readLines`, so nothing touches Qt or MRML off the main thread.
    """

    def __init__(self, command: list[str], environment: dict[str, str] | None = None, cwd: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # its own process group: cancel stops its workers too
        self.command = command
        self.cancelled = False
        self._lines: queue.Queue[str] = queue.Queue()
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=environment, cwd=cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs,
        )
        self._reader = threading.Thread(target=self._readOutput, name="L3LocatorTrainingOutput", daemon=True)
        self._reader.start()

    def _readOutput(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\r\n"))
        self._process.stdout.close()

    def readLines(self) -> list[str]:
        """The output lines that arrived since the last call (stdout and stderr interleaved)."""
        lines = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                return lines

    def isRunning(self) -> bool:
        """True until the process has ended and all its output has been read into the queue."""
        return self._process.poll() is None or self._reader.is_alive()

    def returnCode(self) -> int | None:
        return self._process.poll()

    def wait(self, timeout: float | None = None) -> int:
        code = self._process.wait(timeout)
        self._reader.join(timeout)
        return code

    def cancel(self, graceSeconds: float = 5.0) -> None:
        """Stop the process (and its children): terminate, then kill after ``graceSeconds``."""
        if self._process.poll() is not None:
            return
        self.cancelled = True
        if os.name == "nt":
            self._process.terminate()
        else:
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(graceSeconds)
        except subprocess.TimeoutExpired:
            if os.name == "nt":
                self._process.kill()
            else:
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


@dataclass
class TrainingMonitor:
    """What the progress lines of a run say so far, for the status line and the progress bar."""

    stage: str = ""
    trial: int | None = None
    trials: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    bestObjective: float | None = None
    etaSeconds: float | None = None
    message: str = ""
    modelPath: str = ""
    reportPath: str = ""
    started: float = field(default_factory=time.monotonic)
    _recent: list[str] = field(default_factory=list)

    def consume(self, line: str) -> dict[str, Any] | None:
        """Update from one output line; returns its progress record, or None for a log line."""
        record = parseProgressLine(line)
        if record is None:
            self._recent = [*self._recent[-49:], line]
            return None
        self.stage = record["stage"]
        for key, attribute in (("trial", "trial"), ("trials", "trials"), ("epoch", "epoch"), ("epochs", "epochs"), ("eta_s", "etaSeconds")):
            setattr(self, attribute, record.get(key))
        if record.get("best_objective") is not None:
            self.bestObjective = record["best_objective"]
        self.message = record.get("message") or ""
        if self.stage == "done":
            self.modelPath = record.get("model") or ""
            self.reportPath = record.get("report") or ""
            self.etaSeconds = 0.0
        return record

    def lastLines(self) -> list[str]:
        """The last (up to 50) non-progress output lines, for an error report."""
        return list(self._recent)

    def fraction(self) -> float:
        """Share of the run done, from the elapsed time and the run's own time estimate."""
        if self.stage == "done":
            return 1.0
        if self.etaSeconds is None:
            return 0.0
        elapsed = time.monotonic() - self.started
        return elapsed / (elapsed + self.etaSeconds) if elapsed + self.etaSeconds > 0 else 0.0

    def statusText(self) -> str:
        """e.g. ``Trial 3 of 10, epoch 2 of 5 · best F1 0.81 (1/F1 1.23) · about 4 min left``."""
        if not self.stage:
            return "Preparing the data…"
        if self.stage == "done":
            parts = ["Finished"]
        elif self.stage == "cv_fold":
            parts = [f"Cross-validation fold {self.trial} of {self.trials}"]
        elif self.trial is None:
            parts = ["Training the final model"]
        else:
            parts = [f"Trial {self.trial} of {self.trials}"]
        if self.epoch is not None and self.stage != "done":
            parts[0] += f", epoch {self.epoch} of {self.epochs}"
        if self.bestObjective:
            parts.append(f"best F1 {1.0 / self.bestObjective:.3f} (1/F1 {self.bestObjective:.3g})")
        if self.etaSeconds and self.stage != "done":
            minutes = self.etaSeconds / 60.0
            parts.append(f"about {minutes:.0f} min left" if minutes >= 1.5 else f"about {self.etaSeconds:.0f} s left")
        return " · ".join(parts)


#
# L3LocatorTrainingLogic
#


@dataclass
class FolderSummary:
    """How much training data a folder holds (slice counts along each case's axial axis)."""

    cases: int
    l3Slices: int
    otherSlices: int
    casesWithoutL3: int
    unlabelledFiles: int

    def text(self) -> str:
        text = f"{self.cases} case(s): {self.l3Slices} L3 slices, {self.otherSlices} other slices"
        if self.casesWithoutL3:
            text += f"; {self.casesWithoutL3} case(s) without L3"
        if self.unlabelledFiles:
            text += f"; {self.unlabelledFiles} CT file(s) without a label (ignored)"
        return text + "."


class L3LocatorTrainingLogic(ScriptedLoadableModuleLogic):
    """Count training data, run ``l3locator train`` in the background, read and show its report.

    No Qt: the widget polls :class:`TrainingRun` with a timer; everything else is plain Python
    and MRML nodes.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return L3LocatorTrainingParameterNode(super().getParameterNode())

    # --- data -------------------------------------------------------------------------------------
    @staticmethod
    def summarizeFolder(folder: str | Path) -> FolderSummary:
        """Cases, L3 and other slices of a training folder (the training package's case discovery;
        label files give the slice counts; vertebra maps are read for theirs)."""
        from l3locator.labels import l3_range_from_vertebra_map, read_label
        from l3locator.reading import load_ct
        from l3locator.training.dataset import discover_cases

        discovery = discover_cases(folder)
        l3Slices = otherSlices = withoutL3 = 0
        for case in discovery.cases:
            if case.label_kind == "json":
                label = read_label(case.label)
                numSlices, l3Range = label.num_slices, label.l3_slice_range
            else:
                vertebrae = load_ct(case.label)
                numSlices = vertebrae.num_slices
                l3Range = l3_range_from_vertebra_map(vertebrae.voxels, vertebrae.axial_axis)
            inL3 = 0 if l3Range is None else l3Range[1] - l3Range[0] + 1
            withoutL3 += l3Range is None
            l3Slices += inL3
            otherSlices += numSlices - inL3
        return FolderSummary(len(discovery.cases), l3Slices, otherSlices, withoutL3, len(discovery.unlabelled))

    # --- the run ----------------------------------------------------------------------------------
    @staticmethod
    def runsDirectory() -> Path:
        """Default parent folder of training runs: beside the user models folder."""
        return userModelsDirectory().parent / "training-runs"

    def newRunDirectory(self) -> Path:
        return self.runsDirectory() / datetime.now().strftime("run-%Y%m%d-%H%M%S")

    @staticmethod
    def pythonExecutable() -> str:
        """Slicer's Python launcher (``PythonSlicer``) inside Slicer, else this interpreter."""
        return shutil.which("PythonSlicer") or sys.executable

    @staticmethod
    def trainingCommand(
        dataFolder: str | Path, outputFolder: str | Path, *, trials: int, epochs: int, folds: int,
        device: str = "auto", small: bool = False, resume: bool = False, augmentAllSlices: bool = False,
    ) -> list[str]:
        """The ``l3locator train`` command line for the chosen budget, with JSON progress lines."""
        command = [
            L3LocatorTrainingLogic.pythonExecutable(), "-m", "l3locator.cli", "train", str(dataFolder),
            "--trials", str(int(trials)), "--epochs", str(int(epochs)), "--folds", str(int(folds)),
            "--output-dir", str(outputFolder), "--progress", "json",
        ]
        if device and device != "auto":
            command += ["--device", device]
        if small:
            command.append("--small")
        if augmentAllSlices:
            command += ["--augmentation", "all-slices"]
        if resume:
            command.append("--resume")
        return command

    @staticmethod
    def processEnvironment() -> dict[str, str]:
        """This process's environment, with the folder holding the ``l3locator`` package first on
        ``PYTHONPATH`` (inside Slicer it is a module folder the launched Python does not know)."""
        environment = dict(os.environ)
        spec = importlib.util.find_spec("l3locator")
        if spec is not None and spec.submodule_search_locations:
            packageParent = str(Path(list(spec.submodule_search_locations)[0]).resolve().parent)
            paths = [packageParent] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p and p != packageParent]
            environment["PYTHONPATH"] = os.pathsep.join(paths)
        environment["PYTHONUNBUFFERED"] = "1"
        return environment

    def startTraining(self, command: list[str]) -> TrainingRun:
        """Start ``command`` in the background (see :class:`TrainingRun`)."""
        Path(command[command.index("--output-dir") + 1]).mkdir(parents=True, exist_ok=True)
        return TrainingRun(command, environment=self.processEnvironment())

    # --- results ----------------------------------------------------------------------------------
    @staticmethod
    def readReport(path: str | Path) -> dict[str, Any]:
        """The cross-validation report JSON written by the run."""
        return json.loads(Path(path).read_text(encoding="utf-8"))

    @staticmethod
    def reportText(report: dict[str, Any]) -> str:
        """e.g. ``25 cases: L3 slice error 0.84 ± 1.10 slices (median 0.50, max 5); 92% within 2 slices; slice F1 0.871``."""
        summary = report["summary"]
        errors = summary["error_slices"]

        def number(value, digits=2):
            return "n/a" if value is None else f"{value:.{digits}f}"

        text = (
            f"{summary['cases']} case(s): L3 slice error {number(errors['mean'])} ± {number(errors['sd'])} slices "
            f"(median {number(errors['median'])}, max {number(errors['max'], 1)})"
        )
        if summary.get("within_2") is not None:
            text += f"; {100 * summary['within_2']:.0f}% within 2 slices"
        if summary.get("slice_f1") is not None:
            text += f"; slice F1 {summary['slice_f1']:.3f}"
        if summary.get("failures"):
            text += f"; {summary['failures']} case(s) without an answer"
        return text + "."

    def showReportPlot(self, report: dict[str, Any]):
        """Predicted vs true L3 slice per case (scatter) with the identity line, as table, plot
        series and chart nodes (reused across calls). Returns the chart node."""
        import numpy as np

        rows = [r for r in report["cases"] if r.get("true_index") is not None and r.get("predicted_index") is not None]
        true = np.array([r["true_index"] for r in rows], dtype=np.float64)
        predicted = np.array([r["predicted_index"] for r in rows], dtype=np.float64)
        tableNode = self._singleton("vtkMRMLTableNode", "L3LocatorTraining predicted vs true")
        slicer.util.updateTableFromArray(tableNode, [true, predicted, true], ["True L3 slice", "Predicted L3 slice", "Identity"])
        chartNode = self._singleton("vtkMRMLPlotChartNode", "L3LocatorTraining cross-validation")
        chartNode.SetTitle("Cross-validation: predicted vs true L3 slice")
        chartNode.SetXAxisTitle("True L3 slice (middle of the labelled range)")
        chartNode.SetYAxisTitle("Predicted L3 slice")
        for column, plotType, color in (
            ("Predicted L3 slice", slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter, (0.1, 0.35, 0.8)),
            ("Identity", slicer.vtkMRMLPlotSeriesNode.PlotTypeLine, (0.6, 0.6, 0.6)),
        ):
            seriesNode = self._singleton("vtkMRMLPlotSeriesNode", f"L3LocatorTraining {column}")
            seriesNode.SetAndObserveTableNodeID(tableNode.GetID())
            seriesNode.SetXColumnName("True L3 slice")
            seriesNode.SetYColumnName(column)
            seriesNode.SetPlotType(plotType)
            if plotType == slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter:
                seriesNode.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
                seriesNode.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
            seriesNode.SetColor(*color)
            if not chartNode.HasPlotSeriesNodeID(seriesNode.GetID()):
                chartNode.AddAndObservePlotSeriesNodeID(seriesNode.GetID())
        return chartNode

    @staticmethod
    def _singleton(className: str, name: str):
        node = slicer.mrmlScene.GetFirstNode(name, className)
        return node if node is not None else slicer.mrmlScene.AddNewNodeByClass(className, name)


#
# L3LocatorTrainingTest
#


class L3LocatorTrainingTest(ScriptedLoadableModuleTest):
    """Self-test without training a network: progress parsing, the background process with
    cancel, the command line, and the results plot (no download, a few seconds)."""

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_ProgressAndProcess()
        self.setUp()
        self.test_ReportPlot()

    def test_ProgressAndProcess(self) -> None:
        self.delayDisplay("Background process and progress lines")
        record = {"stage": "trial_end", "trial": 2, "trials": 5, "epoch": None, "epochs": 3, "loss": None,
                  "objective": 1.5, "best_objective": 1.25, "eta_s": 30.0, "message": ""}
        script = f"print('loading'); print('{PROGRESS_PREFIX} ' + {json.dumps(json.dumps(record))}, flush=True)"
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
        self.delayDisplay("Background process and progress lines: passed")

    def test_ReportPlot(self) -> None:
        self.delayDisplay("Cross-validation report plot")
        report = {
            "summary": {"cases": 3, "failures": 0, "error_slices": {"mean": 1.0, "sd": 1.0, "median": 1.0, "max": 2.0},
                        "within_2": 1.0, "slice_f1": 0.9},
            "cases": [{"case": f"c{i}", "true_index": 10.0 + i, "predicted_index": 10 + i + (i % 2)} for i in range(3)],
        }
        logic = L3LocatorTrainingLogic()
        chartNode = logic.showReportPlot(report)
        self.assertEqual(chartNode.GetNumberOfPlotSeriesNodes(), 2)
        tableNode = chartNode.GetNthPlotSeriesNode(0).GetTableNode()
        self.assertEqual(tableNode.GetNumberOfRows(), 3)
        self.assertIn("3 case(s)", logic.reportText(report))
        self.assertIn("1.00 ± 1.00", logic.reportText(report))
        self.delayDisplay("Cross-validation report plot: passed")
