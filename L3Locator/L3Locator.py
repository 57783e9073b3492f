"""L3Locator: find the third lumbar vertebra (L3) slice in a CT volume, correct it, export it.

Module, widget, logic and self-test classes in the layout of Slicer's scripted-module template.
The logic is a thin composition of ``L3LocatorLib`` (Qt-free): ``models`` (which model, cached),
``markups`` (the L3 point), ``plot`` (the probability plot), ``bodycomposition`` (tissue
segments of the L3 slice and their measurement table), ``export`` and ``cases`` (a training case
written as a unit), ``dependencies`` (the Python packages, shared with L3LocatorTraining). The L3
search and the body composition method are the core library ``l3locator``.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import Annotated

import numpy as np
import qt
import vtk

import slicer
from slicer import vtkMRMLMarkupsFiducialNode, vtkMRMLScalarVolumeNode
from slicer.parameterNodeWrapper import WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from L3LocatorLib import bodycomposition, export, markups, plot
from L3LocatorLib.dependencies import ensureDependencies
from L3LocatorLib.models import ModelCache, availableModels, userModelsDirectory
from L3LocatorLib.volumes import ctVolumeFromNode


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
"Measure body composition" segments the L3 slice into skeletal muscle, intermuscular, visceral
and subcutaneous fat by HU thresholds (a method that needs review: correct the segments with the
Segment Editor) and shows their areas, mean HU and the skeletal muscle index in a table that
follows the edits.
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
    modelPath: model file ("" = the shipped default).  heightM: the patient's height in metres
    for the skeletal muscle index (0 = unknown).  trainingFolder, caseName, annotator,
    overwriteExisting, exportTissues: where and how Export label writes the case (exportTissues:
    with the volume's tissue segmentation, when there is one).
    """

    inputVolume: vtkMRMLScalarVolumeNode
    l3Markup: vtkMRMLMarkupsFiducialNode
    modelPath: str = ""
    heightM: Annotated[float, WithinRange(0.0, 2.5)] = 0.0
    trainingFolder: Path
    caseName: str = ""
    annotator: str = ""
    overwriteExisting: bool = False
    exportTissues: bool = True


#
# L3LocatorWidget
#


class L3LocatorWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The module panel: inputs, Find L3 with progress and cancel, result, body composition, export."""

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
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
        self.ui.measureBodyCompositionButton.connect("clicked(bool)", self.onMeasureBodyComposition)
        self.ui.heightSpinBox.connect("valueChanged(double)", self.onHeightChanged)
        self.ui.exportButton.connect("clicked(bool)", self.onExportLabel)

        self.populateModels()
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self.removeObservers()
        self.logic.measurements.stop()

    def enter(self) -> None:
        self.initializeParameterNode()
        self.populateModels()
        self.logic.measurements.watchScene(slicer.mrmlScene)  # tissue segmentations of a loaded scene

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        self.setParameterNode(None)
        self.logic.measurements.stop()

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
        self.ui.measureBodyCompositionButton.enabled = bool(volume and markup) and not self._busy
        self.ui.exportButton.enabled = bool(volume and markup) and not self._busy
        self.ui.exportTissuesCheckBox.enabled = self.logic.getTissueSegmentation(volume) is not None
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
    def onFindL3(self) -> None:
        with slicer.util.tryWithErrorDisplay("Find L3 failed."):
            if not ensureDependencies("L3Locator"):
                return
            from l3locator.engine import Cancelled
            from l3locator.flags import explain

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
            self.ui.resultLabel.text = "\n".join([self.logic.resultText(result), *explain(result.flags), *result.warnings])
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

    # --- body composition -------------------------------------------------------------------------
    def onMeasureBodyComposition(self) -> None:
        with slicer.util.tryWithErrorDisplay("Measure body composition failed."):
            if not ensureDependencies("L3Locator"):
                return
            node = self._parameterNode
            composition = self.logic.measureBodyComposition(node.inputVolume, node.l3Markup, heightM=node.heightM)
            self.ui.bodyCompositionLabel.text = "\n".join([bodycomposition.compositionText(composition), *composition.warnings])
            bodycomposition.showMeasurementTable(self.logic.getBodyCompositionTable(node.inputVolume), slicer.app.applicationLogic())
            self.onJumpToL3()
            self.updateButtons()

    def onHeightChanged(self, heightM: float) -> None:
        """A new height re-measures the table of the input volume's tissue segmentation (the SMI).
        A value that is not a height yet (while typing, or stepping up from "unknown") is skipped."""
        segmentationNode = self.logic.getTissueSegmentation(self._parameterNode.inputVolume) if self._parameterNode else None
        if segmentationNode is None:
            return
        try:
            height = bodycomposition.checkedHeight(heightM)
        except ValueError:
            return
        self.logic.setHeight(segmentationNode, height)

    # --- export -----------------------------------------------------------------------------------
    def onExportLabel(self) -> None:
        with slicer.util.tryWithErrorDisplay("Export label failed."):
            if not ensureDependencies("L3Locator"):
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
                replace=node.overwriteExisting,
                tissueSegmentation=self.logic.getTissueSegmentation(node.inputVolume) if node.exportTissues else None,
            )
            label = exported.label
            tissues = f", tissues {exported.tissueSegmentationPath.name}" if exported.tissueSegmentationPath else ""
            replaced = f"; replaced {', '.join(exported.replaced)}" if exported.replaced else ""
            self.ui.exportStatusLabel.text = (
                f"Exported {label.case}: L3 slice {label.l3_slice_index} (range {label.l3_slice_range[0]}–"
                f"{label.l3_slice_range[1]}), source {label.source}{tissues}, to {exported.labelPath.parent}{replaced}"
            )


#
# L3LocatorLogic
#


class L3LocatorLogic(ScriptedLoadableModuleLogic):
    """Find, show, correct and export L3 in the scene; usable without the widget, no Qt.

    A thin composition of ``L3LocatorLib``: the model cache (:class:`~L3LocatorLib.models.ModelCache`),
    the L3 point (:mod:`L3LocatorLib.markups`), the probability plot (:mod:`L3LocatorLib.plot`),
    the body composition (:mod:`L3LocatorLib.bodycomposition`; ``measurements`` keeps the
    tables up to date with the segment edits) and the export (:mod:`L3LocatorLib.export`).
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        self.models = ModelCache()
        self.measurements = bodycomposition.MeasurementUpdater()

    def getParameterNode(self):
        return L3LocatorParameterNode(super().getParameterNode())

    def findL3(self, volumeNode, model=None, *, device: str | None = None, progress=None, shouldCancel=None):
        """Score the slices of ``volumeNode`` with ``model`` (an ``L3Model``, a file, or None for
        the shipped default), then show the answer: the L3 point (removed when no L3 is found)
        and the probability plot. Returns the core's ``L3Result``.

        Raises:
            l3locator.L3LocatorError: unusable volume or model (``l3locator.engine.Cancelled``
                when ``shouldCancel`` returned True); the scene is left unchanged then.
        """
        from l3locator import L3Model, find_l3

        volume = ctVolumeFromNode(volumeNode)
        l3model = model if isinstance(model, L3Model) else self.models.load(model)
        result = find_l3(volume, l3model, device=device, progress=progress, should_cancel=shouldCancel)
        if result.l3_found:
            markups.placeL3Markup(volumeNode, result.l3_slice_index, result=result, volume=volume)
        else:
            markups.removeL3Markup(volumeNode)
        plot.updateProbabilityPlot(volumeNode, result)
        logging.info("L3Locator: %s", markups.resultText(result))
        return result

    def measureBodyComposition(self, volumeNode, markupNode, *, heightM: float | None = None):
        """Segment and measure the slice of the L3 point (:func:`L3LocatorLib.bodycomposition.measureBodyComposition`):
        the volume's tissue segmentation (earlier edits are replaced) and its table, which from
        then on follows the segment edits. ``heightM``: metres, None or 0 for unknown. Returns
        the core's ``BodyComposition``.

        Raises:
            l3locator.LabelError: no L3 point, or the point is outside the volume.
            l3locator.InputError: not a CT volume.
            ValueError: ``heightM`` is not a person's height in metres.
        """
        sliceIndex = markups.markupSliceIndex(volumeNode, markupNode)
        composition = bodycomposition.measureBodyComposition(volumeNode, sliceIndex, heightM=heightM)
        self.measurements.watch(bodycomposition.getTissueSegmentation(volumeNode))
        return composition

    resultText = staticmethod(markups.resultText)
    getL3Markup = staticmethod(markups.getL3Markup)
    prepareManualL3Markup = staticmethod(markups.prepareManualL3Markup)
    getProbabilityChart = staticmethod(plot.getProbabilityChart)
    getTissueSegmentation = staticmethod(bodycomposition.getTissueSegmentation)
    getBodyCompositionTable = staticmethod(bodycomposition.getMeasurementTable)
    setHeight = staticmethod(bodycomposition.setHeight)
    exportLabel = staticmethod(export.exportCase)


#
# L3LocatorTest
#


def syntheticCT(numSlices: int = 40, name: str = "L3LocatorSyntheticCT"):
    """A small CT-like volume node (HU; 5 mm slices of 48 x 48 voxels of 0.8 mm): air, a soft
    tissue body and a bone block, enough to pass the core's CT checks. No anatomy: a model's
    answer on it means nothing, so the self-test uses models with a fixed answer."""
    voxels = np.full((numSlices, 48, 48), -1000, dtype=np.int16)
    voxels[:, 6:42, 4:44] = 40
    voxels[:, 20:30, 18:30] = 700
    ijkToRAS = np.diag([0.8, 0.8, 5.0, 1.0])
    ijkToRAS[:3, 3] = (-19.0, -19.0, -100.0)
    return slicer.util.addVolumeFromArray(voxels, ijkToRAS, name=name)


def fixedAnswerModel(l3Logit: float):
    """A tiny untrained network whose answer is the same for every slice: zero last-layer weights
    and class logits (-x, +x), so its L3 probability is sigmoid(2x) everywhere. Large positive:
    every slice is L3; large negative: none is."""
    import torch

    from l3locator import L3Model, PreprocessingConfig

    model = L3Model.new("resnet18", PreprocessingConfig(input_size=32))
    with torch.no_grad():
        model.network.fc.weight.zero_()
        model.network.fc.bias.copy_(torch.tensor([-l3Logit, l3Logit]))
    return model


class L3LocatorTest(ScriptedLoadableModuleTest):
    """Self-test on a synthetic CT with fixed-answer models: no download, runs in seconds.

    Checks the answer shown in the scene (the L3 point on the model's slice, one probability per
    slice in the plot table, the point removed when no L3 is found), the point's RAS → IJK
    geometry, the exported case as the core library reads it back, and the body composition
    segments with their table following an edit.
    """

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_FindL3ShowsTheAnswer()
        self.setUp()
        self.test_MarkupAndExport()
        self.setUp()
        self.test_BodyComposition()

    def test_FindL3ShowsTheAnswer(self) -> None:
        self.delayDisplay("Find L3 with fixed-answer models")
        volumeNode = syntheticCT()
        numSlices = volumeNode.GetImageData().GetDimensions()[2]
        logic = L3LocatorLogic()
        progress = []
        result = logic.findL3(volumeNode, fixedAnswerModel(10.0), device="cpu", progress=lambda done, total: progress.append((done, total)))
        self.assertTrue(result.l3_found)
        self.assertEqual((result.num_slices, result.l3_slice_range), (numSlices, (0, numSlices - 1)))
        self.assertEqual(progress[-1][0], progress[-1][1])

        tableNode = plot.getProbabilityTable(volumeNode)
        self.assertEqual(tableNode.GetNumberOfRows(), numSlices)
        self.assertTrue(np.all(slicer.util.arrayFromTableColumn(tableNode, plot.COLUMN_PROBABILITY) > 0.99))
        self.assertEqual(logic.getProbabilityChart(volumeNode).GetNumberOfPlotSeriesNodes(), 2)
        markupNode = logic.getL3Markup(volumeNode)
        self.assertEqual(markups.markupSliceIndex(volumeNode, markupNode), result.l3_slice_index)
        self.assertEqual(markups.labelSource(markupNode, result.l3_slice_index), "accepted")

        result = logic.findL3(volumeNode, fixedAnswerModel(-10.0), device="cpu")
        self.assertFalse(result.l3_found)
        self.assertIsNone(logic.getL3Markup(volumeNode))
        self.assertFalse(slicer.util.arrayFromTableColumn(tableNode, plot.COLUMN_RANGE).any())
        self.delayDisplay("Find L3 with fixed-answer models: passed")

    def test_MarkupAndExport(self) -> None:
        self.delayDisplay("L3 point and label export")
        from l3locator import LabelError
        from l3locator.labels import read_label
        from l3locator.reading import load_ct

        volumeNode = syntheticCT()
        logic = L3LocatorLogic()
        sliceIndex = 23
        markupNode = markups.placeL3Markup(volumeNode, sliceIndex)

        # The point's RAS position, mapped with the volume node's own RAS→IJK matrix, is on the slice.
        position = [0.0, 0.0, 0.0]
        markupNode.GetNthControlPointPositionWorld(0, position)
        rasToIJK = vtk.vtkMatrix4x4()
        volumeNode.GetRASToIJKMatrix(rasToIJK)
        self.assertAlmostEqual(rasToIJK.MultiplyPoint([*position, 1.0])[2], sliceIndex, places=3)
        self.assertEqual(markups.markupSliceIndex(volumeNode, markupNode), sliceIndex)

        with tempfile.TemporaryDirectory() as folder:
            training = os.path.join(folder, "training")
            exported = logic.exportLabel(volumeNode, markupNode, training, caseName="selftest01", annotator="selftest")
            label = read_label(exported.labelPath)
            self.assertEqual((label.l3_slice_index, label.source, label.annotator), (sliceIndex, "manual", "selftest"))
            self.assertEqual(label.l3_slice_range, (sliceIndex - 3, sliceIndex + 3))  # ± 15 mm of 5 mm slices
            exportedVolume = load_ct(exported.imagePath)
            self.assertTrue(np.array_equal(exportedVolume.voxels, slicer.util.arrayFromVolume(volumeNode)))
            with self.assertRaises(LabelError):  # an existing case is never silently replaced
                logic.exportLabel(volumeNode, markupNode, training, caseName="selftest01")
            replaced = logic.exportLabel(volumeNode, markupNode, training, caseName="selftest01", replace=True)
            self.assertEqual(replaced.replaced, ["selftest01.l3.json", "selftest01.nrrd"])
            self.assertEqual(sorted(os.listdir(training)), ["selftest01.l3.json", "selftest01.nrrd"])
        self.delayDisplay("L3 point and label export: passed")

    def test_BodyComposition(self) -> None:
        self.delayDisplay("Body composition of the L3 slice")
        from l3locator.body_composition import TISSUES

        volumeNode = syntheticCT()
        logic = L3LocatorLogic()
        composition = logic.measureBodyComposition(volumeNode, markups.placeL3Markup(volumeNode, 20), heightM=1.7)
        segmentationNode = logic.getTissueSegmentation(volumeNode)
        tableNode = logic.getBodyCompositionTable(volumeNode)
        self.assertEqual(segmentationNode.GetSegmentation().GetSegmentIDs(), TISSUES)
        areas = slicer.util.arrayFromTableColumn(tableNode, bodycomposition.COLUMN_AREA)
        self.assertEqual(len(areas), len(TISSUES))
        self.assertGreater(areas[0], 0.0)  # the soft-tissue block counts as muscle
        self.assertAlmostEqual(areas[0], composition.areas_cm2["muscle"])
        slicer.vtkSlicerSegmentationsModuleLogic.ClearSegment(segmentationNode, "muscle")  # an edit: the table follows
        self.assertEqual(slicer.util.arrayFromTableColumn(tableNode, bodycomposition.COLUMN_AREA)[0], 0.0)
        logic.measurements.stop()
        self.delayDisplay("Body composition of the L3 slice: passed")
