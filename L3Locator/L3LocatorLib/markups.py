"""The L3 point: a markups point list in the scene, one per volume (Qt-free).

The L3 answer is shown as a **point** (``vtkMRMLMarkupsFiducialNode``) at the centre of the L3
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
later knows whether the user accepted, corrected, or placed the point without a model
(:func:`labelSource`). The volume node references its markup (role :data:`REFERENCE_MARKUP`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import slicer

from .volumes import axialIndexOfPoint, ctVolumeFromNode, worldToLocal

if TYPE_CHECKING:
    from l3locator import CTVolume, L3Result

#: Label file sources (the same words as ``l3locator.labels.SOURCES``).
SOURCE_ACCEPTED, SOURCE_CORRECTED, SOURCE_MANUAL = "accepted", "corrected", "manual"
# Markup node attributes holding what the model said.
ATTRIBUTE_MODEL = "L3Locator.Model"
ATTRIBUTE_MODEL_SLICE_INDEX = "L3Locator.ModelSliceIndex"
ATTRIBUTE_MODEL_SLICE_RANGE = "L3Locator.ModelSliceRange"
ATTRIBUTE_CONFIDENCE = "L3Locator.Confidence"
ATTRIBUTE_FLAGS = "L3Locator.Flags"
MODEL_ATTRIBUTES = (ATTRIBUTE_MODEL, ATTRIBUTE_MODEL_SLICE_INDEX, ATTRIBUTE_MODEL_SLICE_RANGE, ATTRIBUTE_CONFIDENCE, ATTRIBUTE_FLAGS)
#: Volume node reference role of the volume's L3 markup.
REFERENCE_MARKUP = "L3LocatorMarkup"


def resultText(result: L3Result) -> str:
    """One line for people (shown in the panel, kept as the markup's description): slice index,
    range, confidence and flags."""
    flags = ", ".join(result.flags) or "none"
    if not result.l3_found:
        return f"No L3 found in {result.num_slices} slices (flags: {flags})."
    first, last = result.l3_slice_range
    return (
        f"L3 at slice {result.l3_slice_index} (range {first}–{last} of {result.num_slices}), "
        f"confidence {result.confidence:.2f}, flags: {flags}."
    )


def markupName(volumeNode) -> str:
    return f"{volumeNode.GetName()} L3"


def getL3Markup(volumeNode):
    """The L3 markup of ``volumeNode``, or None."""
    return volumeNode.GetNodeReference(REFERENCE_MARKUP) if volumeNode is not None else None


def prepareManualL3Markup(volumeNode):
    """The volume's L3 markup, emptied (created if missing), ready for the user to place the
    point by hand. What the model said, if anything, stays recorded, so the exported source is
    ``corrected`` or ``accepted`` after a run and ``manual`` without one."""
    if volumeNode is None:
        raise ValueError("select an input volume first")
    markupNode = getL3Markup(volumeNode)
    if markupNode is None:
        markupNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", markupName(volumeNode))
        markupNode.CreateDefaultDisplayNodes()
        volumeNode.SetNodeReferenceID(REFERENCE_MARKUP, markupNode.GetID())
    markupNode.RemoveAllControlPoints()
    return markupNode


def placeL3Markup(volumeNode, sliceIndex: int, *, result: L3Result | None = None, volume: CTVolume | None = None):
    """Put the volume's L3 point at the centre of axial slice ``sliceIndex`` (reusing its node).

    The point is set in the volume's local frame and the markup follows the volume's parent
    transform, so it stays on that slice however the volume is moved. With ``result``, the
    model's answer is recorded on the node; without it, any earlier record is cleared (the point
    then counts as placed by hand).

    Raises:
        ValueError: ``sliceIndex`` is outside the volume.
    """
    volume = volume if volume is not None else ctVolumeFromNode(volumeNode)
    if not 0 <= int(sliceIndex) < volume.num_slices:
        raise ValueError(f"slice index {sliceIndex} is outside the volume (0–{volume.num_slices - 1})")
    markupNode = prepareManualL3Markup(volumeNode)
    markupNode.SetName(markupName(volumeNode))
    markupNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
    wasModifying = markupNode.StartModify()
    markupNode.AddControlPoint(volume.slice_center_ras(int(sliceIndex)).tolist(), "L3")
    _recordModelAnswer(markupNode, result)
    markupNode.EndModify(wasModifying)
    # After EndModify, which clears a description set while modifying.
    markupNode.SetDescription(resultText(result) if result is not None and result.l3_found else "")
    return markupNode


def removeL3Markup(volumeNode) -> None:
    """Delete the volume's L3 markup with its display and storage nodes, if any (a new run found no L3)."""
    markupNode = getL3Markup(volumeNode)
    volumeNode.RemoveNodeReferenceIDs(REFERENCE_MARKUP)
    if markupNode is None:
        return
    helpers = [markupNode.GetNthDisplayNode(i) for i in range(markupNode.GetNumberOfDisplayNodes())]
    helpers += [markupNode.GetNthStorageNode(i) for i in range(markupNode.GetNumberOfStorageNodes())]
    for node in [markupNode, *helpers]:
        if node is not None and slicer.mrmlScene.IsNodePresent(node):
            slicer.mrmlScene.RemoveNode(node)


def _recordModelAnswer(markupNode, result: L3Result | None) -> None:
    if result is None or not result.l3_found:
        for name in MODEL_ATTRIBUTES:
            markupNode.RemoveAttribute(name)
        return
    first, last = result.l3_slice_range
    markupNode.SetAttribute(ATTRIBUTE_MODEL, result.model)
    markupNode.SetAttribute(ATTRIBUTE_MODEL_SLICE_INDEX, str(result.l3_slice_index))
    markupNode.SetAttribute(ATTRIBUTE_MODEL_SLICE_RANGE, f"{first},{last}")
    markupNode.SetAttribute(ATTRIBUTE_CONFIDENCE, f"{result.confidence:.4f}")
    markupNode.SetAttribute(ATTRIBUTE_FLAGS, ",".join(result.flags))


def markupPositionLocal(volumeNode, markupNode) -> np.ndarray:
    """The markup's first placed point (mm) in the volume's local RAS frame.

    Raises:
        LabelError: the markup has no placed point.
    """
    from l3locator import LabelError

    if markupNode is None or markupNode.GetNumberOfDefinedControlPoints() < 1:
        raise LabelError("no L3 point: run Find L3 or place the point first")
    index = next(i for i in range(markupNode.GetNumberOfControlPoints()) if markupNode.GetNthControlPointPositionStatus(i) == markupNode.PositionDefined)
    world = [0.0, 0.0, 0.0]
    markupNode.GetNthControlPointPositionWorld(index, world)
    return worldToLocal(volumeNode, world)


def markupSliceIndex(volumeNode, markupNode, volume: CTVolume | None = None) -> int:
    """Axial slice index of the markup's first point in ``volumeNode`` (nearest slice).

    Raises:
        LabelError: the markup has no placed point, or the point lies outside the volume.
    """
    from l3locator import LabelError

    volume = volume if volume is not None else ctVolumeFromNode(volumeNode)
    index = int(round(axialIndexOfPoint(volume, markupPositionLocal(volumeNode, markupNode))))
    if not 0 <= index < volume.num_slices:
        raise LabelError(f"the L3 point is outside {volumeNode.GetName()} (slice {index}, the volume has 0–{volume.num_slices - 1})")
    return index


def labelSource(markupNode, sliceIndex: int) -> str:
    """``accepted`` (the model's slice), ``corrected`` (moved from it) or ``manual`` (no model answer)."""
    modelIndex = markupNode.GetAttribute(ATTRIBUTE_MODEL_SLICE_INDEX)
    if not modelIndex:
        return SOURCE_MANUAL
    return SOURCE_ACCEPTED if int(modelIndex) == int(sliceIndex) else SOURCE_CORRECTED


def modelSliceRange(markupNode) -> tuple[int, int] | None:
    """The L3 slice range the model gave for this point (inclusive), or None."""
    recorded = markupNode.GetAttribute(ATTRIBUTE_MODEL_SLICE_RANGE)
    if not recorded:
        return None
    first, last = (int(value) for value in recorded.split(","))
    return first, last

