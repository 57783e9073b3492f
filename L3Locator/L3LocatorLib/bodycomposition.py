"""Body composition on the L3 slice in the scene: tissue segments to edit, a table that follows them (Qt-free).

:func:`measureBodyComposition` runs the core's threshold method
(:func:`l3locator.body_composition.measure_body_composition`) on one axial slice of a volume and
shows the answer as

* a **segmentation node** with one segment per tissue (segment ID = the tissue key ``muscle``,
  ``imat``, ``vat``, ``sat``; name ``TISSUE_TITLES``, colour ``TISSUE_COLOURS_RGB``), all in one
  labelmap layer on the volume's own voxel grid, whose label values are ``TISSUE_LABELS``, with
  only that slice filled. The user corrects it with the Segment Editor.
* a **table node**, one row per tissue: area (cm²), mean HU, and SMI (cm²/m², muscle row only,
  when the height is known). Every change of the segments re-measures the table
  (:class:`MeasurementUpdater`): each segment's voxels *on that slice*, with the HU of that
  slice, by :func:`l3locator.body_composition.measure_labels`. Voxels painted on other slices are
  not measured. Each segment is measured on its own, so a voxel two segments overlap on counts
  for both, as the Segment Editor shows it.

Undefined values (the mean HU of an empty segment, the SMI without a height or outside the muscle
row) are NaN. The volume node references its segmentation and table; the segmentation node
references its volume (Slicer's reference image geometry) and carries the slice index and the
height (attributes), so a measurement can be redone from the scene alone (after loading a saved
scene, :meth:`MeasurementUpdater.watchScene`). Slices are the core's
(:func:`l3locator.body_composition.axial_slice`: the volume's stored order, ``[j, i]`` for an
axially stored volume), so the labels lie on the volume's own voxel grid.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import vtk
from vtk.util import numpy_support

import slicer

from .volumes import ctVolumeFromNode, referencedOrNewNode

if TYPE_CHECKING:
    from l3locator import CTVolume
    from l3locator.body_composition import BodyComposition

# Volume node reference roles of the nodes made for it.
REFERENCE_SEGMENTATION = "L3LocatorTissueSegmentation"
REFERENCE_TABLE = "L3LocatorBodyCompositionTable"
# Segmentation node (and table node) attributes: what was measured.
ATTRIBUTE_SLICE_INDEX = "L3Locator.BodyCompositionSliceIndex"
ATTRIBUTE_HEIGHT_M = "L3Locator.HeightM"
ATTRIBUTE_METHOD = "L3Locator.BodyCompositionMethod"
# Table columns.
COLUMN_TISSUE = "Tissue"
COLUMN_AREA = "Area [cm2]"
COLUMN_MEAN_HU = "Mean [HU]"
COLUMN_SMI = "SMI [cm2/m2]"
#: The segments' representation: binary labelmaps (the Segment Editor's own).
BINARY_LABELMAP = "Binary labelmap"
#: Slicer layouts that have a table view.
LAYOUTS_WITH_TABLE = (
    slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView,
    slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView,
    slicer.vtkMRMLLayoutNode.SlicerLayout3DTableView,
)
#: Segmentation events after which the table is measured again: Segment Editor effects send the
#: first two, clearing a segment only the second.
SEGMENTATION_EVENTS = ("SourceRepresentationModified", "RepresentationModified", "SegmentAdded", "SegmentRemoved", "SegmentModified")


def getTissueSegmentation(volumeNode):
    """The volume's tissue segmentation node, or None before the first measurement."""
    return volumeNode.GetNodeReference(REFERENCE_SEGMENTATION) if volumeNode is not None else None


def getMeasurementTable(volumeNode):
    """The volume's body composition table node, or None before the first measurement."""
    return volumeNode.GetNodeReference(REFERENCE_TABLE) if volumeNode is not None else None


def measureBodyComposition(volumeNode, sliceIndex: int, *, heightM: float | None = None) -> BodyComposition:
    """Segment and measure axial slice ``sliceIndex`` of ``volumeNode`` (HU) with the core's
    threshold method, then show it: the volume's tissue segmentation (made, or its segments
    replaced: earlier edits are lost) and its table. ``heightM``: patient height in metres, for
    the SMI (None or 0: unknown). Returns the core's ``BodyComposition``.

    Raises:
        l3locator.InputError: not a CT volume node (the scene is left unchanged).
        IndexError: ``sliceIndex`` outside the volume (unchanged too).
        ValueError: ``heightM`` is not a person's height in metres (unchanged too).
    """
    from l3locator.body_composition import measure_body_composition

    volume = ctVolumeFromNode(volumeNode)
    composition = measure_body_composition(volume, int(sliceIndex), height_m=checkedHeight(heightM))
    segmentationNode = _showTissueSegments(volumeNode, volume, composition.slice_index, composition.labels)
    segmentationNode.SetAttribute(ATTRIBUTE_HEIGHT_M, "" if composition.height_m is None else repr(composition.height_m))
    segmentationNode.SetAttribute(ATTRIBUTE_METHOD, composition.method)
    updateMeasurementTable(segmentationNode)
    return composition


def setHeight(segmentationNode, heightM: float | None) -> None:
    """Record the patient height (m; None or 0: unknown) on a tissue segmentation and measure
    its table again (the SMI changes; the segments do not).

    Raises:
        ValueError: ``heightM`` is not a person's height in metres (nothing changes).
    """
    height = checkedHeight(heightM)
    segmentationNode.SetAttribute(ATTRIBUTE_HEIGHT_M, "" if height is None else repr(height))
    updateMeasurementTable(segmentationNode)


def checkedHeight(heightM: float | None) -> float | None:
    """A height for the SMI: None for None or 0 (unknown, as the height box shows it), else
    ``heightM`` in metres if it is a person's height.

    Raises:
        ValueError: not a person's height in metres (:func:`l3locator.body_composition.check_height_m`).
    """
    from l3locator.body_composition import check_height_m

    return None if heightM is None or heightM == 0 else check_height_m(heightM)


def segmentedVolume(segmentationNode):
    """The volume node a segmentation was made on (its reference geometry), or None."""
    return segmentationNode.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole())


def measuredSliceIndex(segmentationNode) -> int:
    """The axial slice index a tissue segmentation was made on."""
    return int(segmentationNode.GetAttribute(ATTRIBUTE_SLICE_INDEX))


def measuredHeight(segmentationNode) -> float | None:
    """The height (m) recorded on a tissue segmentation, or None."""
    recorded = segmentationNode.GetAttribute(ATTRIBUTE_HEIGHT_M)
    return float(recorded) if recorded else None


def segmentMasksOnSlice(segmentationNode, volumeNode, sliceIndex: int) -> dict[str, np.ndarray]:
    """Each tissue segment's voxels on axial slice ``sliceIndex`` of ``volumeNode``, as boolean
    arrays in the layout of that slice (:func:`l3locator.body_composition.axial_slice`); all
    False for a segment the user deleted. Segments are read in the segmentation's own
    coordinates, which are the volume's local frame (the segmentation follows the volume's
    parent transform)."""
    from l3locator.body_composition import TISSUES, axial_slice

    volume = ctVolumeFromNode(volumeNode)
    reference = _sliceImage(volumeNode, volume, sliceIndex)
    empty = np.zeros(axial_slice(volume, sliceIndex)[0].shape, dtype=bool)
    segmentation = segmentationNode.GetSegmentation()
    masks = {}
    for tissue in TISSUES:
        segment = segmentation.GetSegment(tissue)
        labelmap = segment.GetRepresentation(BINARY_LABELMAP) if segment is not None else None
        if labelmap is None or _isEmpty(labelmap):
            masks[tissue] = empty.copy()
            continue
        onSlice = slicer.vtkOrientedImageData()
        slicer.vtkOrientedImageDataResample.ResampleOrientedImageToReferenceOrientedImage(labelmap, reference, onSlice)
        masks[tissue] = _sliceArray(onSlice, volume) == segment.GetLabelValue()
    return masks


def measureSegments(segmentationNode) -> tuple[dict[str, float], dict[str, float], float | None]:
    """Areas (cm²), mean HU (NaN for an empty segment) and SMI (cm²/m², or None without a height)
    of the tissue segments on their slice, each segment measured on its own with the HU of the
    volume the segmentation was made on.

    Raises:
        ValueError: the segmentation is not a tissue segmentation of a volume in the scene.
    """
    from l3locator.body_composition import TISSUE_LABELS, axial_slice, measure_labels

    volumeNode = segmentedVolume(segmentationNode)
    if volumeNode is None or not segmentationNode.GetAttribute(ATTRIBUTE_SLICE_INDEX):
        raise ValueError(f"{segmentationNode.GetName()} is not a body composition segmentation of a volume in the scene")
    sliceIndex = measuredSliceIndex(segmentationNode)
    huSlice, spacing = axial_slice(ctVolumeFromNode(volumeNode), sliceIndex)
    areas, meanHU, smi = {}, {}, None
    for tissue, mask in segmentMasksOnSlice(segmentationNode, volumeNode, sliceIndex).items():
        labels = mask.astype(np.uint8) * np.uint8(TISSUE_LABELS[tissue])
        tissueAreas, tissueMeans, tissueSMI = measure_labels(huSlice, labels, spacing, height_m=measuredHeight(segmentationNode))
        areas[tissue] = float(tissueAreas[tissue])
        meanHU[tissue] = _floatOrNaN(tissueMeans[tissue])
        if tissue == "muscle":
            smi = tissueSMI
    return areas, meanHU, smi


def updateMeasurementTable(segmentationNode):
    """Measure the tissue segments again (:func:`measureSegments`) and refill their table (one
    row per tissue; NaN where a value is undefined), made anew if the user deleted it. Returns
    the table node."""
    from l3locator.body_composition import TISSUE_TITLES

    areas, meanHU, smi = measureSegments(segmentationNode)
    volumeNode = segmentedVolume(segmentationNode)
    tableNode = referencedOrNewNode(volumeNode, REFERENCE_TABLE, "vtkMRMLTableNode", f"{volumeNode.GetName()} body composition")
    tissueColumn = vtk.vtkStringArray()
    tissueColumn.SetName(COLUMN_TISSUE)
    numeric = {name: vtk.vtkDoubleArray() for name in (COLUMN_AREA, COLUMN_MEAN_HU, COLUMN_SMI)}
    for name, column in numeric.items():
        column.SetName(name)
    for tissue, name in TISSUE_TITLES.items():
        tissueColumn.InsertNextValue(name)
        numeric[COLUMN_AREA].InsertNextValue(areas[tissue])
        numeric[COLUMN_MEAN_HU].InsertNextValue(meanHU[tissue])
        numeric[COLUMN_SMI].InsertNextValue(smi if tissue == "muscle" and smi is not None else math.nan)
    wasModifying = tableNode.StartModify()
    tableNode.RemoveAllColumns()
    for column in (tissueColumn, *numeric.values()):
        tableNode.AddColumn(column)
    for name, unit in ((COLUMN_AREA, "cm2"), (COLUMN_MEAN_HU, "HU"), (COLUMN_SMI, "cm2/m2")):
        tableNode.SetColumnUnitLabel(name, unit)
    tableNode.SetColumnDescription(COLUMN_SMI, "skeletal muscle index: muscle area / height^2 (needs the patient height)")
    for attribute in (ATTRIBUTE_SLICE_INDEX, ATTRIBUTE_HEIGHT_M, ATTRIBUTE_METHOD):
        tableNode.SetAttribute(attribute, segmentationNode.GetAttribute(attribute) or "")
    tableNode.EndModify(wasModifying)
    return tableNode


def compositionText(composition: BodyComposition) -> str:
    """One line for people after a measurement: which slice, that the method needs review, and
    where the numbers are (the table, which follows the edits; numbers here would go stale)."""
    return (
        f"Segmented slice {composition.slice_index} by HU thresholds: review the segments and correct them with "
        "the Segment Editor; the table follows the edits."
    )


def showMeasurementTable(tableNode, applicationLogic) -> None:
    """Show ``tableNode`` in the table view, switching the layout to one with a table view when
    the current one has none (the slice views and a shown plot are kept)."""
    layoutNode = next(iter(_nodesOfClass(slicer.mrmlScene, "vtkMRMLLayoutNode")), None)
    if layoutNode is not None and layoutNode.GetViewArrangement() not in LAYOUTS_WITH_TABLE:
        withPlot = layoutNode.GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotView
        layoutNode.SetViewArrangement(
            slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView if withPlot else slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView
        )
    applicationLogic.GetSelectionNode().SetActiveTableID(tableNode.GetID())
    applicationLogic.PropagateTableSelection()


class MeasurementUpdater:
    """Keeps the tables of tissue segmentations up to date: observes each watched segmentation
    node and refills its table (:func:`updateMeasurementTable`) whenever its segments change."""

    def __init__(self) -> None:
        self._observations: dict[str, tuple[object, list[int]]] = {}

    def watch(self, segmentationNode) -> None:
        """Follow ``segmentationNode``'s edits (watching it twice is watching it once)."""
        nodeID = segmentationNode.GetID()
        if nodeID in self._observations:
            return
        tags = [
            segmentationNode.AddObserver(getattr(slicer.vtkSegmentation, event), self._onSegmentsChanged)
            for event in SEGMENTATION_EVENTS
        ]
        self._observations[nodeID] = (segmentationNode, tags)

    def watchScene(self, scene) -> None:
        """Watch every tissue segmentation in ``scene`` (e.g. after a saved scene was loaded)."""
        for segmentationNode in _nodesOfClass(scene, "vtkMRMLSegmentationNode"):
            if segmentationNode.GetAttribute(ATTRIBUTE_SLICE_INDEX) and segmentedVolume(segmentationNode) is not None:
                self.watch(segmentationNode)

    def watched(self) -> list:
        """The segmentation nodes being followed."""
        return [node for node, _ in self._observations.values()]

    def stop(self) -> None:
        """Stop following every segmentation."""
        for node, tags in self._observations.values():
            for tag in tags:
                node.RemoveObserver(tag)
        self._observations.clear()

    def _onSegmentsChanged(self, segmentationNode, event) -> None:
        if segmentationNode.GetScene() is None or segmentedVolume(segmentationNode) is None:
            return  # removed from the scene, or its volume was
        updateMeasurementTable(segmentationNode)


def _showTissueSegments(volumeNode, volume: CTVolume, sliceIndex: int, labels: np.ndarray):
    """The volume's tissue segmentation node, its segments replaced by ``labels`` (the tissue
    label map of the slice, ``TISSUE_LABELS`` values) in one shared layer on the volume's grid."""
    from l3locator.body_composition import TISSUE_COLOURS_RGB, TISSUE_LABELS, TISSUE_TITLES

    labelmap = _sliceImage(volumeNode, volume, sliceIndex)
    _sliceArray(labelmap, volume)[...] = labels
    labelmap.Modified()
    segmentationNode = referencedOrNewNode(volumeNode, REFERENCE_SEGMENTATION, "vtkMRMLSegmentationNode", f"{volumeNode.GetName()} tissues")
    wasModifying = segmentationNode.StartModify()
    if segmentationNode.GetDisplayNode() is None:
        segmentationNode.CreateDefaultDisplayNodes()
    segmentationNode.SetReferenceImageGeometryParameterFromVolumeNode(volumeNode)
    segmentationNode.SetNodeReferenceID(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole(), volumeNode.GetID())
    segmentationNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
    segmentationNode.SetAttribute(ATTRIBUTE_SLICE_INDEX, str(sliceIndex))
    segmentation = segmentationNode.GetSegmentation()
    segmentation.RemoveAllSegments()
    for tissue, name in TISSUE_TITLES.items():
        segment = slicer.vtkSegment()
        segment.SetName(name)
        segment.SetNameAutoGenerated(False)
        segment.SetColor(*TISSUE_COLOURS_RGB[tissue])
        segment.SetColorAutoGenerated(False)
        segment.SetLabelValue(TISSUE_LABELS[tissue])
        segment.AddRepresentation(BINARY_LABELMAP, labelmap)  # one image shared by all: one layer
        segmentation.AddSegment(segment, tissue)
    segmentationNode.EndModify(wasModifying)
    return segmentationNode


def _sliceImage(volumeNode, volume: CTVolume, sliceIndex: int):
    """A zero-filled 8-bit image on the volume's voxel grid (local frame), one slice thick along the axial axis."""
    dimensions = volume.voxels.shape[::-1]  # (i, j, k)
    extent = [0, dimensions[0] - 1, 0, dimensions[1] - 1, 0, dimensions[2] - 1]
    extent[2 * volume.axial_axis : 2 * volume.axial_axis + 2] = [int(sliceIndex), int(sliceIndex)]
    image = slicer.vtkOrientedImageData()
    image.SetExtent(extent)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    image.GetPointData().GetScalars().Fill(0)
    ijkToRAS = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRAS)
    image.SetImageToWorldMatrix(ijkToRAS)
    return image


def _sliceArray(image, volume: CTVolume) -> np.ndarray:
    """The voxels of a one-slice image from :func:`_sliceImage` (or resampled onto one) as a
    writable 2D view in the layout of :func:`l3locator.body_composition.axial_slice`."""
    voxels = numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(image.GetDimensions()[::-1])
    indexer = [slice(None)] * 3
    indexer[2 - volume.axial_axis] = 0  # the one slice, by basic indexing: a view
    return voxels[tuple(indexer)]


def _isEmpty(image) -> bool:
    extent = image.GetExtent()
    return any(extent[2 * axis] > extent[2 * axis + 1] for axis in range(3))


def _floatOrNaN(value) -> float:
    return math.nan if value is None else float(value)


def _nodesOfClass(scene, className: str) -> list:
    nodes = scene.GetNodesByClass(className)
    return [nodes.GetItemAsObject(index) for index in range(nodes.GetNumberOfItems())]
