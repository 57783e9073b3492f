"""Body composition in the scene (``L3LocatorLib.bodycomposition``) on a real MRML scene (``slicer-core``).

The tissue segmentation of the L3 slice (segments, colours, geometry), the table that follows
segment edits made the way the Segment Editor makes them
(``vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment``), the height and the SMI, and
the export of the corrected segmentation with a training case. The volume is a phantom's L3
region; every expected number comes from the core library (``l3locator.body_composition``) on
the same slice, and geometry is checked with the volume node's own matrices and with the file
as ``pynrrd`` reads it.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel")
if not hasattr(slicer, "vtkMRMLSegmentationNode"):
    pytest.skip("the 'slicer' package here is not slicer-core", allow_module_level=True)
nrrd = pytest.importorskip("nrrd", reason="needs pynrrd")

ROOT = Path(__file__).resolve().parents[2]
for folder in (ROOT / "L3Locator", Path(__file__).resolve().parent):
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))

import vtk  # noqa: E402
from vtk.util import numpy_support  # noqa: E402

from l3locator import LabelError  # noqa: E402
from l3locator.body_composition import TISSUE_COLOURS_RGB, TISSUE_LABELS, TISSUE_TITLES, TISSUES, measure_labels  # noqa: E402
from L3LocatorLib import bodycomposition, cases, export, markups  # noqa: E402
from L3LocatorLib.volumes import ctVolumeFromNode  # noqa: E402
from slicer_shim.scene import createHeadlessScene  # noqa: E402

#: The volume is 7 slices of a phantom centred on its L3 vertebra: slice 3 is L3.
L3_SLICE, NUM_SLICES = 3, 7
HEIGHT_M = 1.72


@pytest.fixture(scope="module")
def phantomL3Region():
    """HU voxels ``[k, j, i]`` and IJK→RAS of 7 slices around a phantom's L3 (drawn once)."""
    from l3locator.phantoms import generate_phantom

    phantom = generate_phantom(11, shape_ij=(256, 256), slice_thickness_mm=5.0, noise_hu=10.0)
    first = sum(phantom.l3_range) // 2 - L3_SLICE
    ijkToRAS = phantom.volume.ijk_to_ras.copy()
    ijkToRAS[:3, 3] = phantom.volume.ras_of_ijk([0, 0, first])
    return phantom.volume.voxels[first : first + NUM_SLICES].copy(), ijkToRAS


@pytest.fixture
def scene():
    return createHeadlessScene().scene


@pytest.fixture
def volumeNode(scene, phantomL3Region):
    voxels, ijkToRAS = phantomL3Region
    return slicer.util.addVolumeFromArray(voxels, ijkToRAS, name="Phantom L3")


@pytest.fixture
def measured(volumeNode):
    """The phantom's L3 slice measured: (composition, segmentation node, table node)."""
    composition = bodycomposition.measureBodyComposition(volumeNode, L3_SLICE, heightM=HEIGHT_M)
    return composition, bodycomposition.getTissueSegmentation(volumeNode), bodycomposition.getMeasurementTable(volumeNode)


def tableRows(tableNode) -> dict[str, tuple[float, float, float]]:
    """``{tissue title: (area, mean HU, SMI)}`` as the table holds them."""
    table = tableNode.GetTable()
    columns = [table.GetColumnByName(name) for name in (bodycomposition.COLUMN_AREA, bodycomposition.COLUMN_MEAN_HU, bodycomposition.COLUMN_SMI)]
    tissues = table.GetColumnByName(bodycomposition.COLUMN_TISSUE)
    return {tissues.GetValue(row): tuple(column.GetValue(row) for column in columns) for row in range(table.GetNumberOfRows())}


def libraryMeasurement(volumeNode, labels: np.ndarray, spacing, heightM=None):
    """What the core measures for ``labels`` on the L3 slice, one tissue at a time."""
    huSlice = slicer.util.arrayFromVolume(volumeNode)[L3_SLICE]
    areas, means, smi = {}, {}, None
    for tissue in TISSUES:
        only = np.where(labels == TISSUE_LABELS[tissue], labels, 0).astype(np.uint8)
        tissueAreas, tissueMeans, tissueSMI = measure_labels(huSlice, only, spacing, height_m=heightM)
        areas[tissue], means[tissue] = tissueAreas[tissue], tissueMeans[tissue]
        smi = tissueSMI if tissue == "muscle" else smi
    return areas, means, smi


def assertTableHolds(tableNode, areas, means, smi) -> None:
    rows = tableRows(tableNode)
    assert list(rows) == [TISSUE_TITLES[tissue] for tissue in TISSUES]
    for tissue in TISSUES:
        area, mean, rowSMI = rows[TISSUE_TITLES[tissue]]
        assert area == pytest.approx(areas[tissue], abs=1e-9)
        if means[tissue] is None or math.isnan(means[tissue]):
            assert math.isnan(mean)
        else:
            assert mean == pytest.approx(means[tissue], abs=1e-9)
        if tissue == "muscle" and smi is not None:
            assert rowSMI == pytest.approx(smi, abs=1e-9)
        else:
            assert math.isnan(rowSMI)


def segmentImage(segmentationNode, tissue: str):
    segment = segmentationNode.GetSegmentation().GetSegment(tissue)
    return segment, segment.GetRepresentation(bodycomposition.BINARY_LABELMAP)


def imageArray(image) -> np.ndarray:
    """Voxels of a VTK image as ``[k, j, i]`` (a view)."""
    return numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(image.GetDimensions()[::-1])


def editLikeTheSegmentEditor(segmentationNode, volumeNode, tissue: str, mask: np.ndarray, *, erase: bool, sliceIndex: int = L3_SLICE) -> None:
    """Paint or erase ``mask`` ([j, i]) on one slice of a segment as the Segment Editor's effects
    apply their modifier labelmap (``qSlicerSegmentEditorAbstractEffect::modifySegmentByLabelmap``,
    overwriting nothing): add = ``MODE_MERGE_MASK`` with the binary modifier, remove =
    ``MODE_MERGE_MIN`` with the inverted one."""
    modifier = slicer.vtkOrientedImageData()
    dimensions = slicer.util.arrayFromVolume(volumeNode).shape[::-1]
    modifier.SetExtent(0, dimensions[0] - 1, 0, dimensions[1] - 1, sliceIndex, sliceIndex)
    modifier.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    imageArray(modifier)[0] = np.where(mask, 0, 255) if erase else mask
    ijkToRAS = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRAS)
    modifier.SetImageToWorldMatrix(ijkToRAS)
    logic = slicer.vtkSlicerSegmentationsModuleLogic
    assert logic.SetBinaryLabelmapToSegment(modifier, segmentationNode, tissue, logic.MODE_MERGE_MIN if erase else logic.MODE_MERGE_MASK, list(modifier.GetExtent()))


def folderContents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): (b"" if p.is_dir() else p.read_bytes()) for p in sorted(folder.rglob("*"))}


# --- the segmentation of the L3 slice ---------------------------------------------------------------

def test_four_tissue_segments_with_their_colours_on_the_l3_slice(volumeNode, measured):
    composition, segmentationNode, _ = measured
    assert composition.slice_index == L3_SLICE
    assert all(np.count_nonzero(composition.labels == TISSUE_LABELS[tissue]) > 0 for tissue in ("muscle", "vat", "sat"))
    segmentation = segmentationNode.GetSegmentation()
    assert segmentation.GetSegmentIDs() == TISSUES
    assert segmentation.GetNumberOfLayers() == 1  # one labelmap: the file is one label volume
    ijkToRAS = vtk.vtkMatrix4x4()
    volumeNode.GetIJKToRASMatrix(ijkToRAS)
    numJ, numI = composition.labels.shape
    for tissue in TISSUES:
        segment, image = segmentImage(segmentationNode, tissue)
        assert segment.GetName() == TISSUE_TITLES[tissue]
        assert segment.GetColor() == pytest.approx(TISSUE_COLOURS_RGB[tissue])
        assert segment.GetLabelValue() == TISSUE_LABELS[tissue]
        imageToWorld = vtk.vtkMatrix4x4()
        image.GetImageToWorldMatrix(imageToWorld)
        assert slicer.util.arrayFromVTKMatrix(imageToWorld) == pytest.approx(slicer.util.arrayFromVTKMatrix(ijkToRAS))
        assert image.GetExtent() == (0, numI - 1, 0, numJ - 1, L3_SLICE, L3_SLICE)  # the L3 slice of the volume's grid, only
        assert np.array_equal(imageArray(image)[0], composition.labels)
    assert segmentationNode.GetNodeReference(slicer.vtkMRMLSegmentationNode.GetReferenceImageGeometryReferenceRole()) is volumeNode
    assert segmentationNode.GetDisplayNode() is not None


@pytest.mark.parametrize("flippedAxes", [(2,), (1,), (1, 2)], ids=["i toward the right", "j toward anterior", "both"])
def test_segments_stay_on_the_anatomy_whatever_the_storage_order(scene, volumeNode, measured, phantomL3Region, flippedAxes):
    """The same anatomy stored in another voxel order, its geometry flipped with it: the segments
    cover the same voxels of the patient (compared after flipping the segments back)."""
    voxels, ijkToRAS = phantomL3Region[0], phantomL3Region[1].copy()
    for axis in flippedAxes:  # array axis 2 = i, 1 = j
        column = 2 - axis
        voxels = np.flip(voxels, axis=axis)
        ijkToRAS[:3, 3] += ijkToRAS[:3, column] * (voxels.shape[axis] - 1)
        ijkToRAS[:3, column] *= -1
    flippedNode = slicer.util.addVolumeFromArray(np.ascontiguousarray(voxels), ijkToRAS, name="Flipped")
    assert ctVolumeFromNode(flippedNode).slice_center_ras(L3_SLICE) == pytest.approx(ctVolumeFromNode(volumeNode).slice_center_ras(L3_SLICE))
    bodycomposition.measureBodyComposition(flippedNode, L3_SLICE)
    flippedSegmentation = bodycomposition.getTissueSegmentation(flippedNode)
    for tissue in TISSUES:
        asDrawn, flipped = segmentImage(measured[1], tissue)[1], segmentImage(flippedSegmentation, tissue)[1]
        assert np.array_equal(np.flip(imageArray(flipped), axis=flippedAxes), imageArray(asDrawn)), tissue


def test_the_table_holds_the_library_measurement_of_the_slice(volumeNode, measured):
    composition, segmentationNode, tableNode = measured
    assertTableHolds(tableNode, composition.areas_cm2, composition.mean_hu, composition.smi_cm2_per_m2)
    assert composition.smi_cm2_per_m2 == pytest.approx(composition.areas_cm2["muscle"] / HEIGHT_M**2)
    assert composition.areas_cm2 == pytest.approx(libraryMeasurement(volumeNode, composition.labels, composition.pixel_spacing_mm)[0])
    assert tableNode.GetColumnUnitLabel(bodycomposition.COLUMN_AREA) == "cm2"
    assert tableNode.GetAttribute(bodycomposition.ATTRIBUTE_SLICE_INDEX) == str(L3_SLICE)
    assert bodycomposition.measuredHeight(segmentationNode) == HEIGHT_M


def test_measuring_again_reuses_the_nodes_and_replaces_the_segments(scene, volumeNode, measured):
    _, segmentationNode, tableNode = measured
    again = bodycomposition.measureBodyComposition(volumeNode, L3_SLICE + 1)
    assert bodycomposition.getTissueSegmentation(volumeNode) is segmentationNode and bodycomposition.getMeasurementTable(volumeNode) is tableNode
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 1
    assert segmentationNode.GetSegmentation().GetSegmentIDs() == TISSUES
    assert bodycomposition.measuredSliceIndex(segmentationNode) == L3_SLICE + 1 and bodycomposition.measuredHeight(segmentationNode) is None
    assert segmentImage(segmentationNode, "muscle")[1].GetExtent()[4:] == (L3_SLICE + 1, L3_SLICE + 1)
    assertTableHolds(tableNode, again.areas_cm2, again.mean_hu, None)


def test_a_slice_outside_the_volume_or_a_height_in_centimetres_changes_nothing(scene, volumeNode):
    with pytest.raises(IndexError, match="outside the volume"):
        bodycomposition.measureBodyComposition(volumeNode, NUM_SLICES)
    with pytest.raises(ValueError, match="centimetres"):
        bodycomposition.measureBodyComposition(volumeNode, L3_SLICE, heightM=172)
    assert scene.GetNodesByClass("vtkMRMLSegmentationNode").GetNumberOfItems() == 0
    assert bodycomposition.getMeasurementTable(volumeNode) is None


def test_the_segmentation_follows_a_transformed_volume(volumeNode, measured):
    _, segmentationNode, _ = measured
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    volumeNode.SetAndObserveTransformNodeID(transform.GetID())
    composition = bodycomposition.measureBodyComposition(volumeNode, L3_SLICE)
    assert segmentationNode.GetTransformNodeID() == transform.GetID()
    segment, image = segmentImage(segmentationNode, "sat")
    assert np.array_equal(imageArray(image)[0] == segment.GetLabelValue(), composition.labels == TISSUE_LABELS["sat"])


# --- the table follows the edits ----------------------------------------------------------------------

def test_an_edit_in_the_segment_editor_updates_the_table(volumeNode, measured):
    composition, segmentationNode, tableNode = measured
    updater = bodycomposition.MeasurementUpdater()
    updater.watch(segmentationNode)
    updater.watch(segmentationNode)
    assert updater.watched() == [segmentationNode]

    muscle = composition.labels == TISSUE_LABELS["muscle"]
    rightHalf = np.zeros_like(muscle)
    rightHalf[:, : muscle.shape[1] // 2] = True  # the image's left half: the patient's right
    editLikeTheSegmentEditor(segmentationNode, volumeNode, "muscle", rightHalf, erase=True)  # erases muscle only

    edited = composition.labels.copy()
    edited[muscle & rightHalf] = 0
    assert 0 < np.count_nonzero(edited == TISSUE_LABELS["muscle"]) < np.count_nonzero(muscle)
    areas, means, smi = libraryMeasurement(volumeNode, edited, composition.pixel_spacing_mm, HEIGHT_M)
    assert areas["muscle"] < composition.areas_cm2["muscle"] and areas["sat"] == composition.areas_cm2["sat"]
    assertTableHolds(tableNode, areas, means, smi)

    segmentationNode.GetSegmentation().RemoveSegment("vat")  # a deleted segment measures nothing
    assert tableRows(tableNode)[TISSUE_TITLES["vat"]][0] == 0.0 and math.isnan(tableRows(tableNode)[TISSUE_TITLES["vat"]][1])
    slicer.vtkSlicerSegmentationsModuleLogic.ClearSegment(segmentationNode, "sat")  # the Segment Editor's "clear"
    assert tableRows(tableNode)[TISSUE_TITLES["sat"]][0] == 0.0 and composition.areas_cm2["sat"] > 0

    updater.stop()
    editLikeTheSegmentEditor(segmentationNode, volumeNode, "muscle", rightHalf & muscle, erase=False)
    assert tableRows(tableNode)[TISSUE_TITLES["muscle"]][0] == pytest.approx(areas["muscle"])  # no longer followed


def test_voxels_painted_on_another_slice_are_not_measured(volumeNode, measured):
    composition, segmentationNode, tableNode = measured
    updater = bodycomposition.MeasurementUpdater()
    updater.watch(segmentationNode)
    before = tableRows(tableNode)
    square = np.zeros(composition.labels.shape, dtype=bool)
    square[:10, :10] = True
    editLikeTheSegmentEditor(segmentationNode, volumeNode, "imat", square, erase=False, sliceIndex=L3_SLICE + 2)
    masks = bodycomposition.segmentMasksOnSlice(segmentationNode, volumeNode, L3_SLICE + 2)
    assert np.array_equal(masks["imat"], square)  # the paint is there, on its own slice
    after = tableRows(tableNode)
    for name, values in before.items():
        assert after[name] == pytest.approx(values, nan_ok=True)
    updater.stop()


def test_a_deleted_table_comes_back_with_the_next_edit(scene, volumeNode, measured, capfd):
    composition, segmentationNode, tableNode = measured
    updater = bodycomposition.MeasurementUpdater()
    updater.watch(segmentationNode)
    scene.RemoveNode(tableNode)
    assert bodycomposition.getMeasurementTable(volumeNode) is None
    editLikeTheSegmentEditor(segmentationNode, volumeNode, "sat", composition.labels == TISSUE_LABELS["sat"], erase=True)
    newTable = bodycomposition.getMeasurementTable(volumeNode)
    assert newTable is not None and tableRows(newTable)[TISSUE_TITLES["sat"]][0] == 0.0
    scene.RemoveNode(volumeNode)  # without its volume, an edit measures nothing (and raises nothing)
    editLikeTheSegmentEditor(segmentationNode, volumeNode, "muscle", composition.labels == TISSUE_LABELS["muscle"], erase=True)
    assert tableRows(newTable)[TISSUE_TITLES["muscle"]][0] == pytest.approx(composition.areas_cm2["muscle"])
    assert "Traceback" not in capfd.readouterr().err  # an error in an observer is printed, not raised
    updater.stop()


def test_a_scene_loaded_later_is_watched_again(scene, volumeNode, measured):
    _, segmentationNode, _ = measured
    unrelated = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "someone else's")
    updater = bodycomposition.MeasurementUpdater()
    updater.watchScene(scene)
    assert updater.watched() == [segmentationNode] and unrelated not in updater.watched()


def test_the_height_changes_the_smi_and_nothing_else(volumeNode, measured):
    composition, segmentationNode, tableNode = measured
    bodycomposition.setHeight(segmentationNode, 1.60)
    rows = tableRows(tableNode)
    assert rows[TISSUE_TITLES["muscle"]][2] == pytest.approx(composition.areas_cm2["muscle"] / 1.60**2)
    assert rows[TISSUE_TITLES["muscle"]][0] == pytest.approx(composition.areas_cm2["muscle"])
    bodycomposition.setHeight(segmentationNode, 0.0)  # unknown, as the height box shows it
    assert math.isnan(tableRows(tableNode)[TISSUE_TITLES["muscle"]][2]) and bodycomposition.measuredHeight(segmentationNode) is None
    for notAHeight in (float("nan"), -1.7, 0.2):
        with pytest.raises(ValueError):
            bodycomposition.setHeight(segmentationNode, notAHeight)


def test_the_table_is_shown_beside_the_plot(scene, measured):
    _, _, tableNode = measured
    applicationLogic = slicer.vtkSlicerApplicationLogic()
    applicationLogic.SetMRMLScene(scene)
    layoutNode = scene.AddNewNodeByClass("vtkMRMLLayoutNode")
    layoutNode.SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotView)
    bodycomposition.showMeasurementTable(tableNode, applicationLogic)
    assert layoutNode.GetViewArrangement() == slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView
    assert applicationLogic.GetSelectionNode().GetActiveTableID() == tableNode.GetID()


# --- export with the training case ------------------------------------------------------------------

def test_export_writes_the_corrected_segmentation_on_the_ct_grid(volumeNode, measured, tmp_path):
    composition, segmentationNode, _ = measured
    muscle = composition.labels == TISSUE_LABELS["muscle"]
    anterior = np.zeros_like(muscle)
    anterior[: muscle.shape[0] // 2] = True
    editLikeTheSegmentEditor(segmentationNode, volumeNode, "muscle", anterior, erase=True)

    markupNode = markups.placeL3Markup(volumeNode, L3_SLICE)
    exported = export.exportCase(volumeNode, markupNode, tmp_path, caseName="X", annotator="tester", tissueSegmentation=segmentationNode)
    assert exported.tissueSegmentationPath == tmp_path / "X_tissues.seg.nrrd"
    assert sorted(os.listdir(tmp_path)) == ["X.l3.json", "X.nrrd", "X_tissues.seg.nrrd"]

    voxels, header = nrrd.read(str(exported.tissueSegmentationPath))  # [i, j, k]
    expected = np.zeros(slicer.util.arrayFromVolume(volumeNode).shape, np.uint8)  # [k, j, i]
    expected[L3_SLICE] = np.where(muscle & anterior, 0, composition.labels)
    assert np.array_equal(voxels.transpose(2, 1, 0), expected)
    image, imageHeader = nrrd.read(str(exported.imagePath))
    assert voxels.shape == image.shape
    assert np.allclose(header["space origin"], imageHeader["space origin"]) and np.allclose(header["space directions"], imageHeader["space directions"])
    names = {header[f"Segment{n}_ID"]: (header[f"Segment{n}_Name"], int(header[f"Segment{n}_LabelValue"])) for n in range(4)}
    assert names == {tissue: (TISSUE_TITLES[tissue], TISSUE_LABELS[tissue]) for tissue in TISSUES}
    assert np.allclose(ctVolumeFromNode(volumeNode).voxels, image.transpose(2, 1, 0))


def test_a_tissue_segmentation_alone_makes_the_case_exist(volumeNode, measured, tmp_path):
    (tmp_path / "X_tissues.seg.nrrd").write_bytes(b"an annotator's segmentation")
    before = folderContents(tmp_path)
    markupNode = markups.placeL3Markup(volumeNode, L3_SLICE)
    with pytest.raises(LabelError, match=r"case 'X' already exists .*X_tissues\.seg\.nrrd"):
        export.exportCase(volumeNode, markupNode, tmp_path, caseName="X")
    assert folderContents(tmp_path) == before
    assert cases.caseFiles(tmp_path, "X") == [tmp_path / "X_tissues.seg.nrrd"]


def test_replacing_a_case_replaces_its_segmentation_too(volumeNode, measured, tmp_path):
    _, segmentationNode, _ = measured
    markupNode = markups.placeL3Markup(volumeNode, L3_SLICE)
    export.exportCase(volumeNode, markupNode, tmp_path, caseName="X", tissueSegmentation=segmentationNode)
    replaced = export.exportCase(volumeNode, markupNode, tmp_path, caseName="X", replace=True)  # without the segmentation now
    assert replaced.replaced == ["X.l3.json", "X.nrrd", "X_tissues.seg.nrrd"] and replaced.tissueSegmentationPath is None
    assert sorted(os.listdir(tmp_path)) == ["X.l3.json", "X.nrrd"]  # the old segmentation went with its case


def test_a_failed_segmentation_write_leaves_the_old_case_whole(volumeNode, measured, tmp_path, monkeypatch):
    _, segmentationNode, _ = measured
    markupNode = markups.placeL3Markup(volumeNode, L3_SLICE)
    export.exportCase(volumeNode, markupNode, tmp_path, caseName="X", tissueSegmentation=segmentationNode)
    before = folderContents(tmp_path)

    def failingWrite(node, path):
        path.write_bytes(b"half a segmentation")
        raise OSError("disk full")

    monkeypatch.setattr(export, "writeSegmentation", failingWrite)
    with pytest.raises(OSError, match="disk full"):
        export.exportCase(volumeNode, markupNode, tmp_path, caseName="X", replace=True, tissueSegmentation=segmentationNode)
    assert folderContents(tmp_path) == before


def test_a_segmentation_of_another_volume_is_refused(scene, volumeNode, measured, phantomL3Region, tmp_path):
    _, segmentationNode, _ = measured
    other = slicer.util.addVolumeFromArray(phantomL3Region[0], phantomL3Region[1], name="Other CT")
    with pytest.raises(ValueError, match="was not made on Other CT"):
        export.exportCase(other, markups.placeL3Markup(other, L3_SLICE), tmp_path, caseName="X", tissueSegmentation=segmentationNode)
    assert not any(tmp_path.iterdir())
