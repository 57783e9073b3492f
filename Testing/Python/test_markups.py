"""The CLI's .mrk.json is read by Slicer's own markups logic (slicer-core) at the same RAS point."""

import json

import numpy as np
import pytest

from l3locator.markups import read_markups_points, write_markups_point


def test_file_states_ras_and_round_trips(tmp_path):
    path = write_markups_point(tmp_path / "p.mrk.json", [1.5, -2.0, 30.0], description="L3 slice 7")
    markup = json.loads(path.read_text())["markups"][0]
    assert markup["coordinateSystem"] == "RAS" and markup["coordinateUnits"] == "mm"
    assert read_markups_points(path) == [[1.5, -2.0, 30.0]]


def test_lps_files_are_converted_to_ras(tmp_path):
    path = write_markups_point(tmp_path / "p.mrk.json", [1.0, 2.0, 3.0])
    document = json.loads(path.read_text())
    document["markups"][0]["coordinateSystem"] = "LPS"
    path.write_text(json.dumps(document))
    assert read_markups_points(path) == [[-1.0, -2.0, 3.0]]


def test_slicer_markups_logic_loads_the_point(tmp_path):
    slicer = pytest.importorskip("slicer")
    if not hasattr(slicer, "vtkSlicerMarkupsLogic"):
        pytest.skip("the installed 'slicer' package is not slicer-core")
    scene = slicer.vtkMRMLScene()
    selection = slicer.vtkMRMLSelectionNode()
    selection.SetSingletonTag("Singleton")
    scene.AddNode(selection)
    logic = slicer.vtkSlicerMarkupsLogic()
    logic.SetMRMLScene(scene)
    path = write_markups_point(tmp_path / "p.mrk.json", [1.5, -2.0, 30.0])
    node = scene.GetNodeByID(logic.LoadMarkups(str(path)))
    position = [0.0, 0.0, 0.0]
    node.GetNthControlPointPositionWorld(0, position)
    np.testing.assert_allclose(position, [1.5, -2.0, 30.0])
    assert node.GetNthControlPointLabel(0) == "L3"


def test_non_finite_points_are_refused_and_nothing_is_written(tmp_path):
    with pytest.raises(ValueError):
        write_markups_point(tmp_path / "p.mrk.json", [float("nan"), 0.0, 1.0])
    assert list(tmp_path.iterdir()) == []  # no file, no temporary
