"""Fallback stand-ins for Slicer's Python layer, for clones without ``../shared``.

Where ``../shared/vendor/slicer-python`` exists (every developer machine and CI), the tests run
the modules on Slicer's real ``ScriptedLoadableModule`` and ``parameterNodeWrapper`` instead
(:mod:`slicer_shim`). Without it, these stand-ins are just enough to import the module files
(``L3Locator.py``, ``L3LocatorTraining.py``) and run their logic classes: ``qt`` is empty,
``slicer.ScriptedLoadableModule`` has the four base classes, ``slicer.parameterNodeWrapper``
the decorator and two annotations. A real module always wins: a stand-in is installed only
where the import fails.
"""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import slicer

from . import ScriptedLoadableModule, parameterNodeWrapper

_STANDINS = {
    "qt": None,
    "slicer.ScriptedLoadableModule": ScriptedLoadableModule,
    "slicer.parameterNodeWrapper": parameterNodeWrapper,
}


def install() -> list[str]:
    """Register the stand-ins whose real module cannot be imported; returns their names."""
    installed = []
    for name, standIn in _STANDINS.items():
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = standIn if standIn is not None else ModuleType(name, "test-only empty stand-in")
            if name.startswith("slicer."):
                setattr(slicer, name.split(".", 1)[1], sys.modules[name])
            installed.append(name)
    return installed


def uninstall(names: list[str]) -> None:
    """Remove stand-ins registered by :func:`install`."""
    for name in names:
        sys.modules.pop(name, None)
        if name.startswith("slicer."):
            attribute = name.split(".", 1)[1]
            if hasattr(slicer, attribute):
                delattr(slicer, attribute)
