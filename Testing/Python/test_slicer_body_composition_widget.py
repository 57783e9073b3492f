"""The L3Locator panel's body composition section on Slicer's own Python layer, headless.

Slicer's real ``ScriptedLoadableModule`` and parameter node wrapper (``../shared/vendor/slicer-python``)
with ``slicer-core``'s MRML and the test-only ``qt``/``ctk`` shim (``slicer_shim``): the height spin
box bound to the parameter node, the Measure body composition button, the table shown and kept
up to date, and the export of the tissue segmentation from the panel. Skipped where ``../shared``
is absent.
"""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel")
pytest.importorskip("PySide6.QtUiTools", reason="needs PySide6 (PySide6-Essentials)")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import slicer_shim  # noqa: E402

if not slicer_shim.available():
    pytest.skip(f"Slicer's Python layer not found at {slicer_shim.SLICER_PYTHON}", allow_module_level=True)
from slicer_shim.fixtures import L3Locator, makeWidget, session  # noqa: E402, F401 (fixtures)
from test_slicer_body_composition import L3_SLICE, phantomL3Region  # noqa: E402, F401 (a fixture)

@pytest.fixture
def widget(makeWidget, L3Locator):
    """The L3Locator panel on an emptied scene; closed again after the test."""
    return makeWidget(L3Locator, "L3Locator")


@pytest.fixture
def volumeNode(widget, phantomL3Region):
    return slicer.util.addVolumeFromArray(phantomL3Region[0], phantomL3Region[1], name="Phantom L3")


def muscleRow(tableNode) -> tuple[float, float]:
    """(area, SMI) of the table's skeletal muscle row."""
    from L3LocatorLib import bodycomposition

    table = tableNode.GetTable()
    return table.GetColumnByName(bodycomposition.COLUMN_AREA).GetValue(0), table.GetColumnByName(bodycomposition.COLUMN_SMI).GetValue(0)


def test_height_and_export_choice_are_bound_to_the_parameter_node(widget, volumeNode, L3Locator):
    ui, node = widget.ui, widget._parameterNode
    assert node.heightM == 0.0 and ui.heightSpinBox.text == "unknown"  # 0 shows as unknown
    ui.heightSpinBox.value = 1.75
    assert node.heightM == 1.75 and node.parameterNode.GetParameter("heightM") == "1.75"
    node.heightM = 1.6
    assert ui.heightSpinBox.value == 1.6
    assert (ui.heightSpinBox.minimum, ui.heightSpinBox.maximum) == (0.0, 2.5)  # from WithinRange
    with pytest.raises(ValueError):
        node.heightM = 172.0  # centimetres

    assert node.exportTissues and ui.exportTissuesCheckBox.checked
    ui.exportTissuesCheckBox.checked = False
    assert not node.exportTissues
    assert not ui.exportTissuesCheckBox.enabled  # nothing to export before a measurement


def test_measure_needs_an_l3_point(widget, volumeNode, L3Locator):
    ui, node = widget.ui, widget._parameterNode
    assert node.inputVolume is volumeNode and not ui.measureBodyCompositionButton.enabled
    node.l3Markup = L3Locator.markups.placeL3Markup(volumeNode, L3_SLICE)
    assert ui.measureBodyCompositionButton.enabled


def test_measure_from_the_panel_shows_segments_and_a_table_that_follow_the_height(session, widget, volumeNode, L3Locator):
    from L3LocatorLib import bodycomposition

    ui, node = widget.ui, widget._parameterNode
    node.l3Markup = L3Locator.markups.placeL3Markup(volumeNode, L3_SLICE)
    ui.heightSpinBox.value = 1.80
    ui.measureBodyCompositionButton.click()

    assert ui.bodyCompositionLabel.text.startswith(f"Segmented slice {L3_SLICE} by HU thresholds")
    segmentationNode = widget.logic.getTissueSegmentation(volumeNode)
    tableNode = widget.logic.getBodyCompositionTable(volumeNode)
    assert bodycomposition.measuredSliceIndex(segmentationNode) == L3_SLICE and bodycomposition.measuredHeight(segmentationNode) == 1.80
    assert widget.logic.measurements.watched() == [segmentationNode]
    assert session.app.applicationLogic().GetSelectionNode().GetActiveTableID() == tableNode.GetID()  # the table is shown
    assert ui.exportTissuesCheckBox.enabled

    area, smi = muscleRow(tableNode)
    assert area > 0 and smi == pytest.approx(area / 1.80**2)
    ui.heightSpinBox.value = 1.50  # a new height re-measures the SMI, the segments stay
    assert muscleRow(tableNode) == pytest.approx((area, area / 1.50**2))
    ui.heightSpinBox.value = 0.25  # not a height (yet): the table keeps the last one
    assert muscleRow(tableNode) == pytest.approx((area, area / 1.50**2)) and node.heightM == 0.25
    ui.heightSpinBox.value = 0.0
    assert math.isnan(muscleRow(tableNode)[1])

    segmentationNode.GetSegmentation().RemoveSegment("muscle")  # an edit: the logic's updater re-measures
    assert muscleRow(tableNode)[0] == 0.0


def test_measure_without_a_point_says_why(widget, volumeNode, L3Locator):
    from l3locator import LabelError

    widget._parameterNode.l3Markup = L3Locator.markups.prepareManualL3Markup(volumeNode)  # a point list, no point yet
    with pytest.raises(LabelError, match="no L3 point"):  # testing mode: raised instead of shown
        widget.onMeasureBodyComposition()
    assert widget.logic.getTissueSegmentation(volumeNode) is None


def test_export_from_the_panel_includes_the_segmentation_when_ticked(widget, volumeNode, L3Locator, tmp_path):
    ui = widget.ui
    widget._parameterNode.l3Markup = L3Locator.markups.placeL3Markup(volumeNode, L3_SLICE)
    ui.trainingFolderPathLineEdit.currentPath = str(tmp_path)
    ui.caseNameLineEdit.text = "case 1"
    ui.exportButton.click()
    assert sorted(os.listdir(tmp_path)) == ["case_1.l3.json", "case_1.nrrd"]  # not measured yet: nothing more to write

    ui.measureBodyCompositionButton.click()
    ui.overwriteCheckBox.checked = True
    ui.exportButton.click()
    assert sorted(os.listdir(tmp_path)) == ["case_1.l3.json", "case_1.nrrd", "case_1_tissues.seg.nrrd"]
    assert ", tissues case_1_tissues.seg.nrrd, to " in ui.exportStatusLabel.text

    ui.exportTissuesCheckBox.checked = False
    ui.exportButton.click()
    assert sorted(os.listdir(tmp_path)) == ["case_1.l3.json", "case_1.nrrd"]
    assert ui.exportStatusLabel.text.endswith("replaced case_1.l3.json, case_1.nrrd, case_1_tissues.seg.nrrd")
