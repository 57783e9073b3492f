"""An MRML scene with the logics L3Locator needs, for plain Python with the ``slicer-core`` wheel.

Inside 3D Slicer (with or without the main window) the application builds ``slicer.mrmlScene``
and registers every module logic; there, nothing in this module is needed. Under plain Python
``slicer.mrmlScene`` does not exist: :func:`createHeadlessScene` makes one and registers what
L3Locator uses on it: the application logic (selection and interaction singletons), colors
(the MRML color logic: built-in tables, no color files needed), volumes (``AddArchetypeVolume``:
Slicer's own file readers) and markups (JSON storage).
"""

from __future__ import annotations

from dataclasses import dataclass

import slicer


@dataclass
class HeadlessScene:
    """A scene and the logics registered on it (kept referenced so they stay alive)."""

    scene: object
    applicationLogic: object
    volumesLogic: object
    markupsLogic: object
    colorLogic: object


def runningInSlicerApplication() -> bool:
    """True inside the Slicer executable (GUI or ``--no-main-window``), False under plain Python."""
    return hasattr(slicer, "app") and hasattr(slicer, "mrmlScene")


def createHeadlessScene() -> HeadlessScene:
    """A new scene with application, color, volumes and markups logics; also set as ``slicer.mrmlScene``."""
    scene = slicer.vtkMRMLScene()
    applicationLogic = slicer.vtkSlicerApplicationLogic()
    applicationLogic.SetMRMLScene(scene)
    logics = {}
    for name, logicClass in (("Colors", slicer.vtkMRMLColorLogic), ("Volumes", slicer.vtkSlicerVolumesLogic), ("Markups", slicer.vtkSlicerMarkupsLogic)):
        logic = logicClass()
        logic.SetMRMLApplicationLogic(applicationLogic)
        logic.SetMRMLScene(scene)
        applicationLogic.SetModuleLogic(name, logic)
        logics[name] = logic
    applicationLogic.SetColorLogic(logics["Colors"])
    slicer.mrmlScene = scene
    return HeadlessScene(scene, applicationLogic, logics["Volumes"], logics["Markups"], logics["Colors"])
