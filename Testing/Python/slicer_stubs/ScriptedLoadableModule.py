"""Stand-in for ``slicer.ScriptedLoadableModule``: the base classes, without the GUI parts."""

from __future__ import annotations

import logging
import unittest


class ScriptedLoadableModule:
    def __init__(self, parent) -> None:
        self.parent = parent
        self.moduleName = type(self).__name__


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None) -> None:
        self.parent = parent


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None) -> None:
        super().__init__()
        name = type(self).__name__
        self.moduleName = name[: -len("Logic")] if name.endswith("Logic") else name


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, requestedDelay=None, msec=None) -> None:
        logging.info(message)
