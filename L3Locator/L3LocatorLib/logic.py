"""What the L3Locator module does to the MRML scene: find L3, show it, export it (Qt-free).

:class:`L3LocatorSceneLogic` works on ``slicer.mrmlScene`` only: no ``qt``, ``ctk`` or
``slicer.app``. The module's ``L3LocatorLogic`` (in ``L3Locator.py``) adds Slicer's parameter
node handling on top of it; ``L3LocatorBatch.py`` uses it directly, inside Slicer or under plain
Python with ``slicer-core``.

The L3 result is a **point** markup (``vtkMRMLMarkupsFiducialNode``) at the centre of the L3
slice, not a plane, because:

* the answer is one slice index, and a point is one click to place by hand on a volume that was
  never run, or one drag to correct (in a sagittal or coronal view, where the head–foot position
  is what moves); a plane needs its normal and extent handled too, and those carry no information
  (the slice orientation is fixed by the volume's axial axis);
* a point maps back to exactly one slice index, whatever the volume's orientation: its position,
  taken into the volume's local frame, rounded along the axial axis;
* the ``l3locator`` command writes the same kind of ``.mrk.json`` (one point), so files from
  Slicer and from the command line look alike.

What the model said is kept on the markup node as attributes (``L3Locator.*``), so an export
later knows whether the user accepted, corrected, or placed the point without a model.
"""

from __future__ import annotations

import getpass
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

import slicer

from .files import placeFile, safeFileName, temporaryPathBeside
from .volumes import axialIndexOfPoint, ctVolumeFromNode, worldToLocal

if TYPE_CHECKING:
    from l3locator import CTVolume, L3Model, L3Result
    from l3locator.labels import L3Label

#: Typical head–foot half-height of the L3 vertebral body (mm): a corrected or manually placed
#: point has no range of its own, so its label gets ``index ± 15 mm`` (an L3 body is 25–40 mm).
L3_HALF_EXTENT_MM = 15.0
#: Label file sources (the same words as ``l3locator.labels.SOURCES``).
SOURCE_ACCEPTED, SOURCE_CORRECTED, SOURCE_MANUAL = "accepted", "corrected", "manual"

# Markup node attributes holding what the model said.
ATTRIBUTE_MODEL = "L3Locator.Model"
ATTRIBUTE_MODEL_SLICE_INDEX = "L3Locator.ModelSliceIndex"
ATTRIBUTE_MODEL_SLICE_RANGE = "L3Locator.ModelSliceRange"
ATTRIBUTE_CONFIDENCE = "L3Locator.Confidence"
ATTRIBUTE_FLAGS = "L3Locator.Flags"
# Volume node references to the nodes made for it.
REFERENCE_MARKUP = "L3LocatorMarkup"
REFERENCE_TABLE = "L3LocatorProbabilityTable"
REFERENCE_CHART = "L3LocatorProbabilityChart"
# Probability table columns.
COLUMN_SLICE = "Slice index"
COLUMN_PROBABILITY = "L3 probability"
COLUMN_RANGE = "Detected L3 range"

ProgressCallback = Callable[[int, int], None]


@dataclass
class ExportedCase:
    """Files written by :meth:`L3LocatorSceneLogic.exportLabel`."""

    imagePath: Path
    labelPath: Path
    label: L3Label


class L3LocatorSceneLogic:
    """Find L3 in a volume node and show, correct and export the answer in the scene."""

    #: The last model loaded, as ``((resolved path, modification time), model)``.
    _cachedModel: tuple[tuple[str, float], L3Model] | None = None

    # --- model --------------------------------------------------------------------------------
    def loadModel(self, modelPath: str | Path | None = None) -> L3Model:
        """The model in ``modelPath`` (None or "" = the shipped default), cached while the file is unchanged."""
        from l3locator import load_model
        from l3locator.modelfile import DEFAULT_MODEL_PATH

        path = Path(modelPath) if modelPath else DEFAULT_MODEL_PATH
        key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else -1.0)
        if self._cachedModel is None or self._cachedModel[0] != key:
            self._cachedModel = (key, load_model(path))  # one model in memory at a time
        return self._cachedModel[1]

    # --- find L3 --------------------------------------------------------------------------------
    def findL3(
        self,
        volumeNode,
        model: L3Model | str | Path | None = None,
        *,
        device: str | None = None,
        progress: ProgressCallback | None = None,
        shouldCancel: Callable[[], bool] | None = None,
    ) -> L3Result:
        """Score every slice of ``volumeNode``, then show the answer: the L3 markup (removed when no
        L3 is found) and the probability plot nodes. Returns the core's result.

        Raises:
            l3locator.L3LocatorError: unusable volume or model (``Cancelled`` when ``shouldCancel``
                returned True); the scene is left unchanged then.
        """
        from l3locator import L3Model, find_l3

        started = time.perf_counter()
        volume = ctVolumeFromNode(volumeNode)
        l3model = model if isinstance(model, L3Model) else self.loadModel(model)
        result = find_l3(volume, l3model, device=device, progress=progress, should_cancel=shouldCancel)
        result.seconds = time.perf_counter() - started
        if result.l3_found:
            self.placeL3Markup(volumeNode, result.l3_slice_index, result=result, volume=volume)
        else:
            self.removeL3Markup(volumeNode)
        self.updateProbabilityPlot(volumeNode, result)
        logging.info("L3Locator: %s", self.resultText(result))
        return result

    @staticmethod
    def resultText(result: L3Result) -> str:
        """One line for people: slice index, range, confidence and flags."""
        flags = ", ".join(result.flags) or "none"
        if not result.l3_found:
            return f"No L3 found in {result.num_slices} slices (flags: {flags})."
        first, last = result.l3_slice_range
        return (
            f"L3 at slice {result.l3_slice_index} (range {first}–{last} of {result.num_slices}), "
            f"confidence {result.confidence:.2f}, flags: {flags}."
        )

    # --- the markup --------------------------------------------------------------------------
    @staticmethod
    def markupName(volumeNode) -> str:
        return f"{volumeNode.GetName()} L3"

    def getL3Markup(self, volumeNode):
        """The L3 markup made for ``volumeNode`` by this logic, or None."""
        return volumeNode.GetNodeReference(REFERENCE_MARKUP) if volumeNode is not None else None

    def placeL3Markup(self, volumeNode, sliceIndex: int, *, result: L3Result | None = None, volume: CTVolume | None = None):
        """Put the volume's L3 point at the centre of axial slice ``sliceIndex`` (reusing its node).

        The point is set in the volume's local frame and the markup follows the volume's parent
        transform, so it stays on that slice however the volume is moved. With ``result``, the
        model's answer is recorded on the node; without it, any earlier record is cleared (the
        point then counts as placed by hand).
        """
        volume = volume if volume is not None else ctVolumeFromNode(volumeNode)
        if not 0 <= int(sliceIndex) < volume.num_slices:
            raise ValueError(f"slice index {sliceIndex} is outside the volume (0–{volume.num_slices - 1})")
        markupNode = self.prepareManualL3Markup(volumeNode)
        markupNode.SetName(self.markupName(volumeNode))
        markupNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
        wasModifying = markupNode.StartModify()
        markupNode.AddControlPoint(volume.slice_center_ras(int(sliceIndex)).tolist(), "L3")
        self._recordModelAnswer(markupNode, result)
        markupNode.EndModify(wasModifying)
        return markupNode

    def prepareManualL3Markup(self, volumeNode):
        """The volume's L3 markup, emptied (created if missing), ready for the user to place the
        point by hand. What the model said, if anything, stays recorded, so the exported source
        is ``corrected`` or ``accepted`` after a run and ``manual`` without one."""
        if volumeNode is None:
            raise ValueError("select an input volume first")
        markupNode = self.getL3Markup(volumeNode)
        if markupNode is None:
            markupNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", self.markupName(volumeNode))
            markupNode.CreateDefaultDisplayNodes()
            volumeNode.SetNodeReferenceID(REFERENCE_MARKUP, markupNode.GetID())
        markupNode.RemoveAllControlPoints()
        return markupNode

    def removeL3Markup(self, volumeNode) -> None:
        """Delete the volume's L3 markup with its display and storage nodes, if any (a new run found no L3)."""
        markupNode = self.getL3Markup(volumeNode)
        volumeNode.RemoveNodeReferenceIDs(REFERENCE_MARKUP)
        if markupNode is None:
            return
        helpers = [markupNode.GetNthDisplayNode(i) for i in range(markupNode.GetNumberOfDisplayNodes())]
        helpers += [markupNode.GetNthStorageNode(i) for i in range(markupNode.GetNumberOfStorageNodes())]
        for node in [markupNode, *helpers]:
            if node is not None and slicer.mrmlScene.IsNodePresent(node):
                slicer.mrmlScene.RemoveNode(node)

    @staticmethod
    def _recordModelAnswer(markupNode, result: L3Result | None) -> None:
        if result is None or not result.l3_found:
            for name in (ATTRIBUTE_MODEL, ATTRIBUTE_MODEL_SLICE_INDEX, ATTRIBUTE_MODEL_SLICE_RANGE, ATTRIBUTE_CONFIDENCE, ATTRIBUTE_FLAGS):
                markupNode.RemoveAttribute(name)
            markupNode.SetDescription("")
            return
        first, last = result.l3_slice_range
        markupNode.SetAttribute(ATTRIBUTE_MODEL, result.model)
        markupNode.SetAttribute(ATTRIBUTE_MODEL_SLICE_INDEX, str(result.l3_slice_index))
        markupNode.SetAttribute(ATTRIBUTE_MODEL_SLICE_RANGE, f"{first},{last}")
        markupNode.SetAttribute(ATTRIBUTE_CONFIDENCE, f"{result.confidence:.4f}")
        markupNode.SetAttribute(ATTRIBUTE_FLAGS, ",".join(result.flags))
        markupNode.SetDescription(L3LocatorSceneLogic.resultText(result))

    def markupSliceIndex(self, volumeNode, markupNode, volume: CTVolume | None = None) -> int:
        """Axial slice index of the markup's first point in ``volumeNode`` (nearest slice).

        Raises:
            LabelError: the markup has no placed point, or the point lies outside the volume.
        """
        from l3locator import LabelError

        volume = volume if volume is not None else ctVolumeFromNode(volumeNode)
        position = self.markupPositionLocal(volumeNode, markupNode)
        index = int(round(axialIndexOfPoint(volume, position)))
        if not 0 <= index < volume.num_slices:
            raise LabelError(f"the L3 point is outside {volumeNode.GetName()} (slice {index}, the volume has 0–{volume.num_slices - 1})")
        return index

    @staticmethod
    def markupPositionLocal(volumeNode, markupNode) -> np.ndarray:
        """The markup's first point (mm) in the volume's local RAS frame."""
        from l3locator import LabelError

        if markupNode is None or markupNode.GetNumberOfDefinedControlPoints() < 1:
            raise LabelError("no L3 point: run Find L3 or place the point first")
        index = next(i for i in range(markupNode.GetNumberOfControlPoints()) if markupNode.GetNthControlPointPositionStatus(i) == markupNode.PositionDefined)
        world = [0.0, 0.0, 0.0]
        markupNode.GetNthControlPointPositionWorld(index, world)
        return worldToLocal(volumeNode, world)

    @staticmethod
    def labelSource(markupNode, sliceIndex: int) -> str:
        """``accepted`` (the model's slice), ``corrected`` (moved from it) or ``manual`` (no model answer)."""
        modelIndex = markupNode.GetAttribute(ATTRIBUTE_MODEL_SLICE_INDEX)
        if not modelIndex:
            return SOURCE_MANUAL
        return SOURCE_ACCEPTED if int(modelIndex) == int(sliceIndex) else SOURCE_CORRECTED

    # --- the plot ----------------------------------------------------------------------------
    def updateProbabilityPlot(self, volumeNode, result: L3Result):
        """Table (one row per slice: index, probability, 1 inside the detected L3 range else 0),
        two plot series and a chart, reused across runs on the same volume. Returns the chart node."""
        name = volumeNode.GetName()
        probabilities = np.asarray(result.slice_probabilities, dtype=np.float64)
        inRange = np.zeros_like(probabilities)
        if result.l3_slice_range is not None:
            first, last = result.l3_slice_range
            inRange[first : last + 1] = 1.0
        tableNode = self._referencedOrNew(volumeNode, REFERENCE_TABLE, "vtkMRMLTableNode", f"{name} L3 probability table")
        slicer.util.updateTableFromArray(
            tableNode, [np.arange(len(probabilities), dtype=np.int32), probabilities, inRange], [COLUMN_SLICE, COLUMN_PROBABILITY, COLUMN_RANGE]
        )
        chartNode = self._referencedOrNew(volumeNode, REFERENCE_CHART, "vtkMRMLPlotChartNode", f"{name} L3 probability")
        chartNode.SetTitle(f"L3 probability per slice: {name}")
        chartNode.SetXAxisTitle("Slice index")
        chartNode.SetYAxisTitle("Probability")
        chartNode.SetYAxisRangeAuto(False)
        chartNode.SetYAxisRange(0.0, 1.05)
        styles = {COLUMN_PROBABILITY: ((0.1, 0.35, 0.8), "solid"), COLUMN_RANGE: ((0.85, 0.1, 0.1), "dash")}
        for column, (color, lineStyle) in styles.items():
            seriesNode = self._chartSeries(chartNode, f"{name} {column}")
            seriesNode.SetAndObserveTableNodeID(tableNode.GetID())
            seriesNode.SetXColumnName(COLUMN_SLICE)
            seriesNode.SetYColumnName(column)
            seriesNode.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
            seriesNode.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
            seriesNode.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash if lineStyle == "dash" else slicer.vtkMRMLPlotSeriesNode.LineStyleSolid)
            seriesNode.SetColor(*color)
        return chartNode

    def getProbabilityTable(self, volumeNode):
        return volumeNode.GetNodeReference(REFERENCE_TABLE)

    def getProbabilityChart(self, volumeNode):
        return volumeNode.GetNodeReference(REFERENCE_CHART)

    @staticmethod
    def _referencedOrNew(volumeNode, role: str, className: str, name: str):
        node = volumeNode.GetNodeReference(role)
        if node is None:
            node = slicer.mrmlScene.AddNewNodeByClass(className, name)
            volumeNode.SetNodeReferenceID(role, node.GetID())
        return node

    @staticmethod
    def _chartSeries(chartNode, name: str):
        for index in range(chartNode.GetNumberOfPlotSeriesNodes()):
            seriesNode = chartNode.GetNthPlotSeriesNode(index)
            if seriesNode is not None and seriesNode.GetName() == name:
                return seriesNode
        seriesNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
        chartNode.AddAndObservePlotSeriesNodeID(seriesNode.GetID())
        return seriesNode

    # --- markups files -------------------------------------------------------------------------
    @staticmethod
    def saveMarkup(markupNode, path: str | Path) -> Path:
        """Write ``markupNode`` as a Slicer markups JSON file (``.mrk.json``) with Slicer's writer."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        storageNode = markupNode.GetStorageNode()
        if storageNode is None:
            markupNode.AddDefaultStorageNode()
            storageNode = markupNode.GetStorageNode()
        storageNode.SetFileName(str(path))
        if not storageNode.WriteData(markupNode):
            raise OSError(f"could not write the markup to {path}")
        return path

    @staticmethod
    def loadMarkup(path: str | Path, name: str | None = None):
        """Read a ``.mrk.json`` point list into a new markups node (Slicer's reader)."""
        path = Path(path)
        markupNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name or path.name.split(".")[0])
        storageNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsJsonStorageNode")
        markupNode.SetAndObserveStorageNodeID(storageNode.GetID())
        storageNode.SetFileName(str(path))
        if not storageNode.ReadData(markupNode):
            slicer.mrmlScene.RemoveNode(markupNode)
            slicer.mrmlScene.RemoveNode(storageNode)
            raise OSError(f"could not read a markups file from {path}")
        return markupNode

    # --- export for training ---------------------------------------------------------------------
    def exportLabel(
        self,
        volumeNode,
        markupNode,
        folder: str | Path,
        *,
        caseName: str | None = None,
        source: str | None = None,
        annotator: str | None = None,
        overwrite: bool = False,
    ) -> ExportedCase:
        """Write the case to a training folder: ``<case>.nrrd`` (the CT, Slicer's writer, gzip) and
        ``<case>.l3.json`` (the label, ``l3locator.labels`` format), in the volume's own IJK/RAS.

        Args:
            caseName: file name stem; default: the volume's name made file-safe.
            source: ``accepted`` / ``corrected`` / ``manual``; default: from the markup
                (:meth:`labelSource`).
            annotator: who confirmed the point; default: the login name.
            overwrite: replace an existing case of the same name (never done silently).

        The range is the model's when the answer is accepted; otherwise the slices within
        :data:`L3_HALF_EXTENT_MM` of the point. Each file appears atomically; the label is written
        last, so a case exists exactly when its label does.

        Raises:
            LabelError: no point, point outside the volume, or the case exists and ``overwrite`` is False.
            OSError: the CT could not be written.
        """
        from l3locator import LabelError
        from l3locator.labels import L3Label, label_path_for, write_label

        volume = ctVolumeFromNode(volumeNode)
        index = self.markupSliceIndex(volumeNode, markupNode, volume)
        source = source or self.labelSource(markupNode, index)
        first, last = self._labelRange(markupNode, volume, index, source)
        case = safeFileName(caseName or volumeNode.GetName())
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        imagePath, labelPath = folder / f"{case}.nrrd", label_path_for(folder, case)
        if not overwrite and (imagePath.exists() or labelPath.exists()):
            raise LabelError(f"case {case!r} already exists in {folder}; choose another case name or allow overwriting")
        modelIndex = markupNode.GetAttribute(ATTRIBUTE_MODEL_SLICE_INDEX)
        label = L3Label(
            case=case,
            image=imagePath.name,
            l3_slice_index=index,
            l3_slice_range=(first, last),
            source=source,
            num_slices=volume.num_slices,
            slice_axis="ijk"[volume.axial_axis],
            l3_position_ras=[round(float(v), 3) for v in self.markupPositionLocal(volumeNode, markupNode)],
            annotator=annotator if annotator is not None else _loginName(),
            model=markupNode.GetAttribute(ATTRIBUTE_MODEL) or None,
            model_slice_index=int(modelIndex) if modelIndex else None,
        )
        imageExisted = imagePath.exists()
        self._writeVolume(volumeNode, imagePath, overwrite=overwrite)
        try:
            write_label(label, labelPath, overwrite=overwrite)
        except BaseException:
            if not imageExisted:
                imagePath.unlink(missing_ok=True)
            raise
        return ExportedCase(imagePath, labelPath, label)

    @staticmethod
    def _labelRange(markupNode, volume: CTVolume, index: int, source: str) -> tuple[int, int]:
        modelRange = markupNode.GetAttribute(ATTRIBUTE_MODEL_SLICE_RANGE)
        if source == SOURCE_ACCEPTED and modelRange:
            first, last = (int(v) for v in modelRange.split(","))
            if first <= index <= last:
                return first, last
        half = int(round(L3_HALF_EXTENT_MM / volume.slice_thickness))
        return max(0, index - half), min(volume.num_slices - 1, index + half)

    @staticmethod
    def _writeVolume(volumeNode, path: Path, *, overwrite: bool) -> None:
        """Write the volume (local geometry) with Slicer's archetype writer, atomically. The node's
        own storage node is left alone, so Save Data still writes where the user chose."""
        temporary = temporaryPathBeside(path)
        try:
            storageNode = slicer.vtkMRMLVolumeArchetypeStorageNode()
            storageNode.SetFileName(str(temporary))
            storageNode.SetUseCompression(True)
            if not storageNode.WriteData(volumeNode):
                raise OSError(f"Slicer could not write {volumeNode.GetName()} to {path}")
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        try:
            placeFile(temporary, path, overwrite=overwrite)
        except FileExistsError as exc:
            from l3locator import LabelError

            raise LabelError(f"{path} appeared while exporting; not overwriting it") from exc


def _loginName() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name on this system (e.g. some containers)
        return ""
