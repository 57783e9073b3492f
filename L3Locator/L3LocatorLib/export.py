"""Export label: a volume and its L3 point as a training case (Qt-free).

A case is ``<case>.nrrd`` (the CT, written by Slicer's volume writer, gzip-compressed, in the
volume's own IJK/RAS geometry), ``<case>.l3.json`` (the label, :mod:`l3locator.labels`
format) and, when asked, ``<case>_tissues.seg.nrrd`` (the volume's tissue segmentation of the L3
slice as the user corrected it, :mod:`L3LocatorLib.bodycomposition`, on the CT's voxel grid),
published together (:func:`L3LocatorLib.cases.publishCase`): an existing case of that
name, in any format training reads, is never replaced unless asked, and when it is, it is
replaced whole or not at all.
"""

from __future__ import annotations

import getpass
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import slicer

from .bodycomposition import segmentedVolume
from .cases import publishCase
from .files import safeFileName
from .markups import ATTRIBUTE_MODEL, ATTRIBUTE_MODEL_SLICE_INDEX, SOURCE_ACCEPTED, labelSource, markupPositionLocal, markupSliceIndex, modelSliceRange
from .volumes import ctVolumeFromNode

if TYPE_CHECKING:
    from l3locator import CTVolume
    from l3locator.labels import L3Label

#: Typical head–foot half-height of the L3 vertebral body (mm): a corrected or manually placed
#: point has no range of its own, so its label gets ``index ± 15 mm`` (an L3 body is 25–40 mm).
L3_HALF_EXTENT_MM = 15.0
IMAGE_SUFFIX = ".nrrd"


@dataclass
class ExportedCase:
    """What :func:`exportCase` wrote (``tissueSegmentationPath`` None when no segmentation was
    exported), and the files of an earlier case of that name it replaced."""

    imagePath: Path
    labelPath: Path
    label: L3Label
    replaced: list[str]
    tissueSegmentationPath: Path | None = None


def exportCase(
    volumeNode,
    markupNode,
    folder: str | Path,
    *,
    caseName: str | None = None,
    source: str | None = None,
    annotator: str | None = None,
    replace: bool = False,
    tissueSegmentation=None,
) -> ExportedCase:
    """Write the volume and its L3 point to a training folder as case ``<case>``.

    Args:
        caseName: file name stem; default: the volume's name made file-safe.
        source: ``accepted`` / ``corrected`` / ``manual``; default: from the markup
            (:func:`L3LocatorLib.markups.labelSource`).
        annotator: who confirmed the point; default: the login name.
        replace: replace an existing case of the same name (never done silently).
        tissueSegmentation: the volume's tissue segmentation node, written as
            ``<case>_tissues.seg.nrrd``; None: no segmentation is written.

    The range is the model's when the answer is accepted; otherwise the slices within
    :data:`L3_HALF_EXTENT_MM` of the point. Everything is checked before any file is written.

    Raises:
        LabelError: no point, point outside the volume, or the case exists and ``replace`` is False.
        ValueError: ``tissueSegmentation`` was not made on ``volumeNode``.
        OSError: the CT or the segmentation could not be written (the folder is left as it was).
    """
    from l3locator.labels import LABEL_SUFFIX, TISSUE_SEGMENTATION_SUFFIX, L3Label, write_label

    volume = ctVolumeFromNode(volumeNode)
    index = markupSliceIndex(volumeNode, markupNode, volume)
    source = source or labelSource(markupNode, index)
    case = safeFileName(caseName or volumeNode.GetName())
    imageName, labelName = f"{case}{IMAGE_SUFFIX}", f"{case}{LABEL_SUFFIX}"
    segmentationName = f"{case}{TISSUE_SEGMENTATION_SUFFIX}" if tissueSegmentation is not None else None
    if tissueSegmentation is not None and segmentedVolume(tissueSegmentation) is not volumeNode:
        raise ValueError(f"{tissueSegmentation.GetName()} was not made on {volumeNode.GetName()}; measure the body composition of this volume first")
    modelIndex = markupNode.GetAttribute(ATTRIBUTE_MODEL_SLICE_INDEX)
    label = L3Label(
        case=case,
        image=imageName,
        l3_slice_index=index,
        l3_slice_range=labelRange(markupNode, volume, index, source),
        source=source,
        num_slices=volume.num_slices,
        slice_axis="ijk"[volume.axial_axis],
        l3_position_ras=[round(float(v), 3) for v in markupPositionLocal(volumeNode, markupNode)],
        annotator=annotator if annotator is not None else _loginName(),
        model=markupNode.GetAttribute(ATTRIBUTE_MODEL) or None,
        model_slice_index=int(modelIndex) if modelIndex else None,
    )

    def writeFiles(staging: Path) -> list[Path]:
        writeVolume(volumeNode, staging / imageName)
        written = [staging / imageName]
        if segmentationName is not None:
            writeSegmentation(tissueSegmentation, staging / segmentationName)
            written.append(staging / segmentationName)
        return [*written, write_label(label, staging / labelName)]

    published = publishCase(folder, case, writeFiles, replace=replace)
    folder = Path(folder)
    segmentationPath = folder / segmentationName if segmentationName is not None else None
    return ExportedCase(folder / imageName, folder / labelName, label, published.replaced, segmentationPath)


def labelRange(markupNode, volume: CTVolume, index: int, source: str) -> tuple[int, int]:
    """The label's L3 slice range (inclusive): the model's when its answer was accepted,
    else the slices within :data:`L3_HALF_EXTENT_MM` of ``index``."""
    modelRange = modelSliceRange(markupNode)
    if source == SOURCE_ACCEPTED and modelRange is not None and modelRange[0] <= index <= modelRange[1]:
        return modelRange
    half = int(round(L3_HALF_EXTENT_MM / volume.slice_thickness))
    return max(0, index - half), min(volume.num_slices - 1, index + half)


def writeVolume(volumeNode, path: Path) -> None:
    """Write the volume (local geometry) to ``path`` with Slicer's archetype writer (format
    from the suffix, compressed). The node's own storage node is left alone, so Save Data still
    writes where the user chose.

    Raises:
        OSError: Slicer could not write the file.
    """
    storageNode = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storageNode.SetFileName(str(path))
    storageNode.SetUseCompression(True)
    if not storageNode.WriteData(volumeNode):
        raise OSError(f"Slicer could not write {volumeNode.GetName()} to {path}")


def writeSegmentation(segmentationNode, path: Path) -> None:
    """Write a segmentation node to ``path`` (``.seg.nrrd``, compressed) with Slicer's
    segmentation writer, on its reference geometry (the CT's voxel grid). The node's own storage
    node is left alone.

    Raises:
        OSError: Slicer could not write the file.
    """
    storageNode = slicer.vtkMRMLSegmentationStorageNode()
    storageNode.SetFileName(str(path))
    storageNode.SetUseCompression(True)
    if not storageNode.WriteData(segmentationNode):
        raise OSError(f"Slicer could not write {segmentationNode.GetName()} to {path}")


def _loginName() -> str:
    try:
        return getpass.getuser()
    except Exception:  # no login name on this system (e.g. some containers)
        return ""
