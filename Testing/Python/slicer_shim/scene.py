"""An MRML scene with the logics the L3Locator modules use, for plain Python with ``slicer-core``.

Inside 3D Slicer the application builds ``slicer.mrmlScene`` and registers every module logic.
Under plain Python ``slicer.mrmlScene`` does not exist: :func:`createHeadlessScene` makes one
and registers what the modules use on it: the application logic (selection and interaction
singletons), colors (built-in tables, no color files needed), volumes (Slicer's own file
readers), markups (JSON storage) and plots (charts shown through the selection node).
"""

from __future__ import annotations

from dataclasses import dataclass

import slicer


@dataclass
class HeadlessScene:
    """A scene and the logics registered on it (kept referenced so they stay alive)."""

    scene: object
    applicationLogic: object
    logics: dict[str, object]


def createHeadlessScene() -> HeadlessScene:
    """A new scene with application, color, volumes, markups and plots logics; also set as ``slicer.mrmlScene``."""
    scene = slicer.vtkMRMLScene()
    applicationLogic = slicer.vtkSlicerApplicationLogic()
    applicationLogic.SetMRMLScene(scene)
    logics = {}
    for name, logicClass in (
        ("Colors", slicer.vtkMRMLColorLogic),
        ("Volumes", slicer.vtkSlicerVolumesLogic),
        ("Markups", slicer.vtkSlicerMarkupsLogic),
        ("Plots", slicer.vtkSlicerPlotsLogic),
    ):
        logic = logicClass()
        logic.SetMRMLApplicationLogic(applicationLogic)
        logic.SetMRMLScene(scene)
        applicationLogic.SetModuleLogic(name, logic)
        logics[name] = logic
    applicationLogic.SetColorLogic(logics["Colors"])
    slicer.mrmlScene = scene
    return HeadlessScene(scene, applicationLogic, logics)
