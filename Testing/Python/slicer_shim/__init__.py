"""Run the Slicer modules on Slicer's real Python layer, headless, for tests.

``../shared/vendor/slicer-python`` holds Slicer's own ``ScriptedLoadableModule``,
``parameterNodeWrapper``, ``packaging`` and ``i18n`` (see its README); ``slicer-core`` gives
the real MRML classes and ``slicer.util``. What the Slicer application adds on top is
stood in for here, thinly: ``qt`` and ``ctk`` over PySide6 with PythonQt's conventions
(:mod:`.qt`, :mod:`.ctk`), Slicer's MRML widgets (:mod:`.mrml_widgets`), a scene with the
module logics (:mod:`.scene`), and ``slicer.app`` / ``slicer.modules`` (:class:`SlicerSession`).

:func:`startSession` installs all of it; :meth:`SlicerSession.close` removes it again, so other
tests see plain ``slicer-core``. Nothing here is part of the project.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path
from types import ModuleType, SimpleNamespace

#: Slicer's Python layer beside the project; absent in a user's fresh clone.
SLICER_PYTHON = Path(__file__).resolve().parents[4] / "shared" / "vendor" / "slicer-python"
#: Where the Slicer modules of this project live.
PROJECT_ROOT = Path(__file__).resolve().parents[3]
#: ``slicer`` attributes a session adds (removed by ``close``).
_SLICER_ATTRIBUTES = ("app", "modules", "mrmlScene", "selfTests", "ScriptedLoadableModule", "parameterNodeWrapper", "packaging", "i18n")


def available() -> bool:
    """Whether Slicer's Python layer is present beside the project."""
    return (SLICER_PYTHON / "slicer" / "ScriptedLoadableModule.py").is_file()


class SlicerSession:
    """The stand-in application: ``slicer.app``, ``slicer.modules`` and loaded scripted modules."""

    def __init__(self) -> None:
        from PySide6 import QtWidgets

        import slicer

        from . import ctk, mrml_widgets, qt
        from .scene import createHeadlessScene

        self.qApplication = QtWidgets.QApplication.instance() or QtWidgets.QApplication([])
        self._savedSlicerAttributes = {name: getattr(slicer, name) for name in _SLICER_ATTRIBUTES if hasattr(slicer, name)}
        self._mrmlWidgetNames = list(mrml_widgets.widgetClasses())
        self._savedPath = list(slicer.__path__)
        self._savedSysPath = list(sys.path)
        self._loadedModules: list[str] = []

        sys.modules["qt"], sys.modules["ctk"] = qt, ctk
        for name, widgetClass in mrml_widgets.widgetClasses().items():
            setattr(slicer, name, widgetClass)
        qt.QUiLoader.widgetClasses = {**qt.widgetClasses(), **ctk.widgetClasses(), **mrml_widgets.widgetClasses()}
        slicer.__path__.append(str(SLICER_PYTHON / "slicer"))

        self.headless = createHeadlessScene()
        self.scene = self.headless.scene
        self.app = TestApplication(self.headless.applicationLogic)
        slicer.app = self.app
        slicer.modules = ModuleType("slicer.modules", "Slicer modules of the test session")
        for name, logic in (("markups", self.headless.logics["Markups"]), ("plots", self.headless.logics["Plots"])):
            setattr(slicer.modules, name, SimpleNamespace(logic=lambda logic=logic: logic))
        for name in ("ScriptedLoadableModule", "parameterNodeWrapper", "packaging", "i18n"):
            module = importlib.import_module(f"slicer.{name}")
            if not Path(module.__file__).is_relative_to(SLICER_PYTHON):
                raise RuntimeError(f"slicer.{name} came from {module.__file__}, not from {SLICER_PYTHON}")
            setattr(slicer, name, module)

    def loadModule(self, name: str):
        """Import the scripted module ``name`` (``<PROJECT_ROOT>/<name>/<name>.py``) as Slicer does:
        its folder on ``sys.path``, an instance of its module class registered in ``slicer.modules``.
        Returns the Python module."""
        import slicer

        folder = PROJECT_ROOT / name
        for path in (str(PROJECT_ROOT / "L3Locator"), str(folder)):
            if path not in sys.path:
                sys.path.insert(0, path)
        module = importlib.import_module(name)
        self._loadedModules.append(name)
        parent = SimpleNamespace(path=str(folder / f"{name}.py"))
        instance = getattr(module, name)(parent)
        parent.instance = instance
        setattr(slicer.modules, name.lower(), parent)
        setattr(slicer.modules, f"{name}Instance", instance)
        return module

    def createWidget(self, module, name: str):
        """The module's widget in a module panel (as Slicer's module panel makes it), set up and entered."""
        from PySide6 import QtWidgets

        from . import mrml_widgets

        panel = mrml_widgets.qMRMLWidget()
        panel.setLayout(QtWidgets.QVBoxLayout())
        panel.setMRMLScene(self.scene)
        panel.isEntered = True
        widget = getattr(module, f"{name}Widget")(panel)
        widget.setup()
        widget.enter()
        return widget

    def processEvents(self) -> None:
        self.qApplication.processEvents()

    def close(self) -> None:
        """Remove everything the session installed."""
        import slicer

        for name in self._loadedModules:
            sys.modules.pop(name, None)
        for name in [n for n, m in sys.modules.items() if n.startswith("slicer.") and _isVendorModule(m)]:
            del sys.modules[name]
        sys.modules.pop("qt", None)
        sys.modules.pop("ctk", None)
        for name in (*_SLICER_ATTRIBUTES, *self._mrmlWidgetNames):
            if hasattr(slicer, name):
                delattr(slicer, name)
        for name, value in self._savedSlicerAttributes.items():
            setattr(slicer, name, value)
        slicer.__path__[:] = self._savedPath
        sys.path[:] = self._savedSysPath


def _isVendorModule(module) -> bool:
    path = getattr(module, "__file__", None)
    return bool(path) and Path(path).resolve().is_relative_to(SLICER_PYTHON)


class TestApplication:
    """``slicer.app`` for tests: testing mode (message boxes return their default and are not
    shown; ``pip_ensure`` installs nothing), Qt's event loop and cursor, the module manager."""

    applicationName = "Slicer"

    def __init__(self, applicationLogic) -> None:
        from PySide6 import QtCore

        from .qt import PythonQtObject

        class ModuleManager(PythonQtObject, QtCore.QObject):
            moduleAboutToBeUnloaded = QtCore.Signal(str)

        self._applicationLogic = applicationLogic
        self._moduleManager = ModuleManager()

    def testingEnabled(self) -> bool:
        return True

    def processEvents(self) -> None:
        from PySide6 import QtWidgets

        QtWidgets.QApplication.processEvents()

    def setOverrideCursor(self, cursor) -> None:
        from PySide6 import QtWidgets

        QtWidgets.QApplication.setOverrideCursor(cursor)

    def restoreOverrideCursor(self) -> None:
        from PySide6 import QtWidgets

        QtWidgets.QApplication.restoreOverrideCursor()

    def translate(self, context: str, text: str) -> str:
        return text

    def layoutManager(self):
        """None, as in ``Slicer --no-main-window``: the test application has no views."""
        return None

    def moduleManager(self):
        return self._moduleManager

    def applicationLogic(self):
        return self._applicationLogic


def startSession() -> SlicerSession:
    """Install the stand-in application around Slicer's real Python layer (see the module docstring)."""
    if not available():
        raise FileNotFoundError(f"Slicer's Python layer not found at {SLICER_PYTHON}")
    return SlicerSession()
