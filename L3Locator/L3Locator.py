"""L3Locator: find the third lumbar vertebra (L3) slice in a CT volume, correct it, export it.

Module, widget, logic and self-test classes in the layout of Slicer's scripted-module template.
The logic's scene work lives in ``L3LocatorLib.logic`` (Qt-free, shared with the headless batch
script ``L3LocatorBatch.py``); the L3 search itself is the core library ``l3locator``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import qt
import vtk

import slicer
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from L3LocatorLib.logic import L3LocatorSceneLogic
from L3LocatorLib.models import availableModels, userModelsDirectory

#: Python packages L3Locator needs, as a requirements file (ranges, not pins: Slicer users
#: share one Python environment between extensions).
REQUIREMENTS_FILE = Path(__file__).resolve().parent / "Resources" / "requirements.txt"


#
# L3Locator
#


class L3Locator(ScriptedLoadableModule):
    """Module description shown in Slicer's module panel and Help."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = "L3 Locator"
        self.parent.categories = ["Quantification"]
        self.parent.dependencies = ["Markups", "Plots"]
        self.parent.contributors = ["L3Locator contributors"]
        self.parent.helpText = """
Finds the axial slice through the third lumbar vertebra (L3) in a CT scan, the slice used for body
composition analysis (skeletal muscle and fat areas). A deep network scores every axial slice; the
answer is a point at the centre of the L3 slice, a per-slice probability plot, and a confidence
with flags for cases that need a look. Drag the point to correct it (in a sagittal or coronal
view), or place it by hand, then export the case as training data for L3LocatorTraining.
"""
        self.parent.acknowledgementText = """
Method after the imbalance-aware, Bayesian-optimised ResNet50 slice classifier for L3 localisation
in CT. Not for clinical use.
"""


#
# Parameter node
#


@parameterNodeWrapper
class L3LocatorParameterNode:
    """The module's state, saved with the scene.

    inputVolume: the CT to search.  l3Markup: the L3 point to show, correct and export.
    modelPath: model file ("" = the shipped default).  trainingFolder, caseName, annotator,
    overwriteExisting: where and how Export label writes the case.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    l3Markup: vtkMRMLMarkupsFiducialNode
    modelPath: str = ""
    trainingFolder: Path
    caseName: str = ""
    annotator: str = ""
    overwriteExisting: bool = False


#
# L3LocatorWidget
#


class L3LocatorWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, Find L3 with progress and cancel, result, export."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._dependenciesReady = False
        self._busy = False
        self._cancelRequested = False

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/L3Locator.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = L3LocatorLogic()

        self.ui.markupPlaceWidget.setMRMLScene(slicer.mrmlScene)
        self.ui.markupPlaceWidget.placeMultipleMarkups = slicer.qSlicerMarkupsPlaceWidget.ForcePlaceSingleMarkup
        self.ui.progressBar.setValue(0)

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.findL3Button.connect("clicked(bool)", self.onFindL3)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancel)
        self.ui.modelComboBox.connect("currentIndexChanged(int)", self.onModelSelected)
        self.ui.browseModelButton.connect("clicked(bool)", self.onBrowseModel)
        self.ui.placeL3Button.connect("clicked(bool)", self.onPlaceL3)
        self.ui.jumpToL3Button.connect("clicked(bool)", self.onJumpToL3)
        self.ui.showPlotButton.connect("clicked(bool)", self.onShowPlot)
        self.ui.exportButton.connect("clicked(bool)", self.onExportLabel)

        self.populateModels()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.populateModels()

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

    # --- parameter node -------------------------------------------------------------------------
    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                self._parameterNode.inputVolume = firstVolumeNode

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.selectModelPath(self._parameterNode.modelPath)
        self.updateButtons()

    def updateButtons(self, caller=None, event=None) -> None:
        """Enable what can be done now; keep the place widget on the current L3 point."""
        node = self._parameterNode
        volume = node.inputVolume if node else None
        markup = node.l3Markup if node else None
        self.ui.findL3Button.enabled = bool(volume) and not self._busy
        self.ui.findL3Button.toolTip = "Find the L3 slice in the input volume" if volume else "Select an input CT volume"
        self.ui.cancelButton.enabled = self._busy
        self.ui.placeL3Button.enabled = bool(volume) and not self._busy
        self.ui.jumpToL3Button.enabled = bool(markup)
        self.ui.showPlotButton.enabled = bool(volume) and self.logic.getProbabilityChart(volume) is not None
        self.ui.exportButton.enabled = bool(volume and markup) and not self._busy
        self.ui.caseNameLineEdit.placeholderText = volume.GetName() if volume else ""
        if self.ui.markupPlaceWidget.currentNode() is not markup:
            self.ui.markupPlaceWidget.setCurrentNode(markup)
        self.ui.markupPlaceWidget.enabled = bool(markup)

    # --- models -----------------------------------------------------------------------------------
    def populateModels(self) -> None:
        """Fill the model selector: the shipped default, trained models from the user models
        folder, and the file chosen with Browse, each item's data being its path."""
        combo = self.ui.modelComboBox
        current = combo.currentData if combo.count else None
        wasBlocked = combo.blockSignals(True)
        combo.clear()
        for entry in availableModels():
            combo.addItem(entry.label, str(entry.path))
            combo.setItemData(combo.count - 1, str(entry.path), qt.Qt.ToolTipRole)
        if combo.count == 0:
            combo.addItem("(no model yet: browse for a file or train one)", "")
        combo.blockSignals(wasBlocked)
        self.selectModelPath(self._parameterNode.modelPath if self._parameterNode else current or "")

    def selectModelPath(self, path: str) -> None:
        """Show ``path`` in the model selector (adding it if it is not listed), or keep the
        current choice when ``path`` is empty; the parameter node follows the selector."""
        combo = self.ui.modelComboBox
        if path:
            index = combo.findData(path)
            if index < 0:
                combo.addItem(Path(path).name, path)
                index = combo.count - 1
            combo.currentIndex = index
        self.onModelSelected(combo.currentIndex)

    def onModelSelected(self, index: int) -> None:
        if self._parameterNode:
            self._parameterNode.modelPath = self.ui.modelComboBox.itemData(index) or ""

    def onBrowseModel(self) -> None:
        start = str(userModelsDirectory()) if userModelsDirectory().is_dir() else ""
        path = qt.QFileDialog.getOpenFileName(self.parent, "Choose an L3Locator model file", start, "L3Locator model (*.pt);;All files (*)")
        if path:
            self.selectModelPath(path)

    # --- find L3 ----------------------------------------------------------------------------------
    def ensureDependencies(self) -> bool:
        """Install missing Python packages the first time they are needed (asking first)."""
        if not self._dependenciesReady:
            self._dependenciesReady = ensurePythonRequirements(REQUIREMENTS_FILE, requester="L3Locator")
        return self._dependenciesReady

    def onFindL3(self) -> None:
        with slicer.util.tryWithErrorDisplay("Find L3 failed."):
            if not self.ensureDependencies():
                return
            from l3locator.scoring import Cancelled

            volumeNode = self._parameterNode.inputVolume
            self.setBusy(True, f"Scoring the slices of {volumeNode.GetName()}…")
            try:
                result = self.logic.findL3(
                    volumeNode, self._parameterNode.modelPath or None, progress=self.onProgress, shouldCancel=lambda: self._cancelRequested
                )
            except Cancelled:
                self.ui.resultLabel.text = "Cancelled."
                return
            finally:
                self.setBusy(False)
            self.ui.resultLabel.text = self.logic.resultText(result)
            self._parameterNode.l3Markup = self.logic.getL3Markup(volumeNode)
            slicer.util.setSliceViewerLayers(background=volumeNode, fit=True)
            self.onJumpToL3()
            self.onShowPlot()

    def setBusy(self, busy: bool, message: str = "") -> None:
        self._busy = busy
        self._cancelRequested = False
        self.ui.progressBar.setValue(0)
        self.ui.progressBar.setFormat(message + " %p%" if busy else "%p%")
        self.updateButtons()
        slicer.app.processEvents()

    def onProgress(self, done: int, total: int) -> None:
        self.ui.progressBar.setMaximum(total)
        self.ui.progressBar.setValue(done)
        slicer.app.processEvents()  # repaint, and let Cancel be clicked

    def onCancel(self) -> None:
        self._cancelRequested = True

    # --- the L3 point -----------------------------------------------------------------------------
    def onPlaceL3(self) -> None:
        """Start placing the L3 point by hand (replacing the current one) on the input volume."""
        with slicer.util.tryWithErrorDisplay("Could not start placing the L3 point."):
            markupNode = self.logic.prepareManualL3Markup(self._parameterNode.inputVolume)
            self._parameterNode.l3Markup = markupNode
            self.ui.markupPlaceWidget.setCurrentNode(markupNode)
            self.ui.markupPlaceWidget.setPlaceModeEnabled(True)

    def onJumpToL3(self) -> None:
        markupNode = self._parameterNode.l3Markup if self._parameterNode else None
        if markupNode and markupNode.GetNumberOfDefinedControlPoints() > 0:
            slicer.modules.markups.logic().JumpSlicesToNthPointInMarkup(markupNode.GetID(), 0, True)

    def onShowPlot(self) -> None:
        chartNode = self.logic.getProbabilityChart(self._parameterNode.inputVolume) if self._parameterNode.inputVolume else None
        if chartNode:
            slicer.modules.plots.logic().ShowChartInLayout(chartNode)

    # --- export -----------------------------------------------------------------------------------
    def onExportLabel(self) -> None:
        with slicer.util.tryWithErrorDisplay("Export label failed."):
            if not self.ensureDependencies():
                return
            node = self._parameterNode
            folder = str(node.trainingFolder) if node.trainingFolder else ""
            if folder in ("", "."):
                raise ValueError("Choose a training folder first.")
            exported = self.logic.exportLabel(
                node.inputVolume,
                node.l3Markup,
                folder,
                caseName=node.caseName or None,
                annotator=node.annotator or None,
                overwrite=node.overwriteExisting,
            )
            label = exported.label
            self.ui.exportStatusLabel.text = (
                f"Exported {label.case}: L3 slice {label.l3_slice_index} (range {label.l3_slice_range[0]}–"
                f"{label.l3_slice_range[1]}), source {label.source}, to {exported.labelPath.parent}"
            )


#
# L3LocatorLogic
#


class L3LocatorLogic(ScriptedLoadableModuleLogic, L3LocatorSceneLogic):
    """Module logic: Slicer's parameter node handling plus :class:`L3LocatorSceneLogic` (find,
    show, correct and export L3 in the scene). Usable without the widget; no Qt."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return L3LocatorParameterNode(super().getParameterNode())


#
# Python dependencies
#


def requirementLines(requirementsFile: Path) -> list[str]:
    """The requirement specifiers in a requirements file (comments, blanks and options dropped)."""
    lines = []
    for line in Path(requirementsFile).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            lines.append(line)
    return lines


def _requirementSatisfied(requirement) -> bool:
    """Whether an installed distribution satisfies a ``packaging`` requirement (before Slicer 5.11)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(requirement.name) in requirement.specifier
    except PackageNotFoundError:
        return False


def ensurePythonRequirements(requirementsFile: Path, requester: str) -> bool:
    """Make sure the packages of ``requirementsFile`` are installed, asking the user before
    installing anything. Returns False when the user declined (after telling them what is missing).

    * torch and torchvision through the PyTorch extension's ``PyTorchUtils`` when it is installed
      (it picks the CUDA or CPU build that fits the computer), else like any other package;
    * everything through ``slicer.packaging.pip_ensure`` (Slicer >= 5.11), or, on older Slicer,
      ``slicer.util.pip_install`` of the missing ones after a confirmation.
    """
    from packaging.requirements import Requirement

    requirements = [Requirement(line) for line in requirementLines(requirementsFile)]
    byName = {requirement.name.lower(): requirement for requirement in requirements}
    try:
        import PyTorchUtils
    except ModuleNotFoundError:
        PyTorchUtils = None
    if PyTorchUtils is not None and "torch" in byName:
        torchLogic = PyTorchUtils.PyTorchUtilsLogic()
        if not torchLogic.torchInstalled():
            torch = torchLogic.installTorch(
                askConfirmation=True,
                torchVersionRequirement=str(byName["torch"].specifier),
                torchvisionVersionRequirement=str(byName["torchvision"].specifier) if "torchvision" in byName else "",
            )
            if torch is None:
                slicer.util.warningDisplay(f"{requester} needs PyTorch; it was not installed.")
                return False
    try:
        from slicer.packaging import load_requirements, pip_ensure
    except ImportError:  # Slicer < 5.11
        missing = [str(requirement) for requirement in requirements if not _requirementSatisfied(requirement)]
        if not missing:
            return True
        if not slicer.util.confirmOkCancelDisplay(
            f"{requester} needs these Python packages, which will be downloaded and installed now "
            "(this can take several minutes):\n\n" + "\n".join(missing),
            windowTitle=f"{requester}: install Python packages",
        ):
            slicer.util.warningDisplay(f"{requester} cannot run without: {', '.join(missing)}.")
            return False
        with slicer.util.tryWithErrorDisplay("Installing the Python packages failed.", waitCursor=True):
            slicer.util.pip_install(missing)
        return True
    try:
        pip_ensure(load_requirements(requirementsFile), requester=requester)
    except RuntimeError:  # the user declined
        slicer.util.warningDisplay(f"{requester} cannot run without its Python packages ({', '.join(map(str, requirements))}).")
        return False
    return True


#
# L3LocatorTest
#


class L3LocatorTest(ScriptedLoadableModuleTest):
    """Self-test on a synthetic phantom with an untrained model: no download, runs in a minute.

    An untrained model's answer is random, so the checks are on structure and geometry: one
    probability per slice in the plot table, the markup on the requested slice (RAS → IJK), the
    ``.mrk.json`` round trip, and the exported case read back by the core library.
    """

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_FindL3OnPhantom()
        self.setUp()
        self.test_MarkupAndExportRoundTrip()

    def _phantomAndModel(self):
        from l3locator import L3Model, PreprocessingConfig
        from l3locator.phantom import generate_phantom

        from L3LocatorLib.volumes import addVolumeNodeFromCTVolume

        phantom = generate_phantom(7, shape_ij=(64, 64), slice_thickness_mm=5.0, extent="abdomen")
        volumeNode = addVolumeNodeFromCTVolume(phantom.volume, "L3LocatorPhantom")
        model = L3Model.new("resnet18", PreprocessingConfig(input_size=32))
        return phantom, volumeNode, model

    def test_FindL3OnPhantom(self) -> None:
        self.delayDisplay("Find L3 on a phantom")
        phantom, volumeNode, model = self._phantomAndModel()
        logic = L3LocatorLogic()
        progress = []
        result = logic.findL3(volumeNode, model, device="cpu", progress=lambda done, total: progress.append((done, total)))
        numSlices = phantom.volume.num_slices
        self.assertEqual(result.num_slices, numSlices)
        self.assertEqual(progress[-1], (numSlices, numSlices))

        tableNode = logic.getProbabilityTable(volumeNode)
        self.assertEqual(tableNode.GetNumberOfRows(), numSlices)
        column = slicer.util.arrayFromTableColumn(tableNode, "L3 probability")
        self.assertTrue(all(abs(a - b) < 1e-9 for a, b in zip(column, result.slice_probabilities)))
        self.assertEqual(logic.getProbabilityChart(volumeNode).GetNumberOfPlotSeriesNodes(), 2)

        markupNode = logic.getL3Markup(volumeNode)
        if result.l3_found:
            self.assertEqual(logic.markupSliceIndex(volumeNode, markupNode), result.l3_slice_index)
            self.assertEqual(logic.labelSource(markupNode, result.l3_slice_index), "accepted")
        else:
            self.assertIsNone(markupNode)
        self.delayDisplay("Find L3 on a phantom: passed")

    def test_MarkupAndExportRoundTrip(self) -> None:
        self.delayDisplay("L3 point, markups file and label export")
        from l3locator import LabelError
        from l3locator.labels import read_label
        from l3locator.reading import load_ct

        phantom, volumeNode, _ = self._phantomAndModel()
        logic = L3LocatorLogic()
        first, last = phantom.l3_range
        sliceIndex = (first + last) // 2
        markupNode = logic.placeL3Markup(volumeNode, sliceIndex)

        # The point's RAS position, mapped with the volume node's own RAS→IJK matrix, is on the slice.
        position = [0.0, 0.0, 0.0]
        markupNode.GetNthControlPointPositionWorld(0, position)
        rasToIJK = vtk.vtkMatrix4x4()
        volumeNode.GetRASToIJKMatrix(rasToIJK)
        ijk = rasToIJK.MultiplyPoint([*position, 1.0])
        self.assertAlmostEqual(ijk[2], sliceIndex, places=3)
        self.assertEqual(logic.markupSliceIndex(volumeNode, markupNode), sliceIndex)

        with tempfile.TemporaryDirectory() as folder:
            markupsFile = logic.saveMarkup(markupNode, os.path.join(folder, "L3.mrk.json"))
            reloaded = logic.loadMarkup(markupsFile)
            reloadedPosition = [0.0, 0.0, 0.0]
            reloaded.GetNthControlPointPositionWorld(0, reloadedPosition)
            for a, b in zip(position, reloadedPosition):
                self.assertAlmostEqual(a, b, places=3)

            exported = logic.exportLabel(volumeNode, markupNode, os.path.join(folder, "training"), caseName="phantom07", annotator="selftest")
            label = read_label(exported.labelPath)
            self.assertEqual((label.l3_slice_index, label.source, label.annotator), (sliceIndex, "manual", "selftest"))
            self.assertEqual(label.num_slices, phantom.volume.num_slices)
            self.assertLessEqual(label.l3_slice_range[0], sliceIndex)
            self.assertGreaterEqual(label.l3_slice_range[1], sliceIndex)
            exportedVolume = load_ct(exported.imagePath)
            self.assertEqual(exportedVolume.voxels.shape, phantom.volume.voxels.shape)
            self.assertTrue(abs(exportedVolume.ijk_to_ras - phantom.volume.ijk_to_ras).max() < 1e-3)
            with self.assertRaises(LabelError):  # an existing case is never silently replaced
                logic.exportLabel(volumeNode, markupNode, os.path.join(folder, "training"), caseName="phantom07")
        self.delayDisplay("L3 point, markups file and label export: passed")
