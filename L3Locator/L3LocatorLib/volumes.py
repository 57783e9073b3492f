"""Between Slicer volume nodes and the core's :class:`~l3locator.volume.CTVolume`.

Geometry is the volume's *local* frame: ``IJKToRAS`` of the node, ignoring any parent transform.
Slice indices and the CT written on export are in that frame; points given in world RAS are
brought into it with :func:`worldToLocal` (which follows linear and non-linear parent transforms).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import vtk

import slicer

if TYPE_CHECKING:
    from l3locator import CTVolume


def ijkToRASArray(volumeNode) -> np.ndarray:
    """4x4 float64 matrix: voxel index ``(i, j, k, 1)`` → local RAS (mm)."""
    matrix = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(matrix)
    return slicer.util.arrayFromVTKMatrix(matrix).astype(np.float64)


def ctVolumeFromNode(volumeNode) -> CTVolume:
    """The node's voxels (a view, not a copy; ``[k, j, i]``, HU assumed) and local geometry.

    Whether the values look like CT is judged where every volume is judged, by
    :func:`l3locator.find_l3` (``l3locator.reading.check_volume``), with the same message as for files.

    Raises:
        InputError: no node, a label map, no image data, or not a single-component volume.
    """
    from l3locator import CTVolume, InputError

    if volumeNode is None:
        raise InputError("no input volume selected")
    name = volumeNode.GetName() or volumeNode.GetID()
    if volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(f"{name} is a label map, not a CT volume")
    if not volumeNode.IsA("vtkMRMLScalarVolumeNode"):
        raise InputError(f"{name} is a {volumeNode.GetClassName()}, not a scalar CT volume")
    imageData = volumeNode.GetImageData()
    if imageData is None or imageData.GetPointData().GetScalars() is None:
        raise InputError(f"{name} has no voxel data")
    if imageData.GetNumberOfScalarComponents() != 1:
        raise InputError(f"{name} has {imageData.GetNumberOfScalarComponents()} components per voxel; a CT has one")
    voxels = slicer.util.arrayFromVolume(volumeNode)
    return CTVolume(voxels=voxels, ijk_to_ras=ijkToRASArray(volumeNode), source=name, metadata={"slicer_node_id": volumeNode.GetID()})


def worldToLocal(volumeNode, positionWorld) -> np.ndarray:
    """A world RAS point (mm) expressed in the volume's local RAS frame (mm)."""
    worldToVolume = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(None, volumeNode.GetParentTransformNode(), worldToVolume)
    return np.asarray(worldToVolume.TransformPoint([float(v) for v in positionWorld]), dtype=np.float64)


def axialIndexOfPoint(volume: CTVolume, positionRAS) -> float:
    """Continuous slice index (along ``volume.axial_axis``) of a local RAS point (mm)."""
    return float(volume.ijk_of_ras(positionRAS)[volume.axial_axis])


def referencedOrNewNode(volumeNode, role: str, className: str, name: str):
    """The node ``volumeNode`` references as ``role``, or a new ``className`` node named ``name``
    added to the scene and referenced (so each volume keeps its own plot, table, segmentation)."""
    node = volumeNode.GetNodeReference(role)
    if node is None:
        node = slicer.mrmlScene.AddNewNodeByClass(className, name)
        volumeNode.SetNodeReferenceID(role, node.GetID())
    return node
