"""Test-only ``ctk`` module: the CTK widgets Slicer's Python layer names, over PySide6.

``ctkPathLineEdit`` and ``ctkCollapsibleButton`` behave as far as the modules and the parameter
node wrapper use them (a path with its change signal; a titled box). The other classes exist
because the wrapper's GUI connectors compare widget types against them; they are the plain Qt
widget they are closest to.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from .qt import PythonQtObject, pythonQtClass


@pythonQtClass
class ctkPathLineEdit(PythonQtObject, QtWidgets.QWidget):
    """A path in a line edit; ``currentPath`` (str) and ``currentPathChanged(QString)``."""

    currentPathChanged = QtCore.Signal(str)
    Dirs, Drives, Files = 1, 2, 4

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self._lineEdit = QtWidgets.QLineEdit(self)
        layout.addWidget(self._lineEdit)
        self._lineEdit.textChanged.connect(self.currentPathChanged.emit)

    @property
    def currentPath(self) -> str:
        return self._lineEdit.text()

    @currentPath.setter
    def currentPath(self, path: str) -> None:
        self._lineEdit.setText(str(path))


@pythonQtClass
class ctkCollapsibleButton(PythonQtObject, QtWidgets.QGroupBox):
    """A titled box (the real one also collapses; no module code relies on that)."""


@pythonQtClass
class ctkCheckBox(PythonQtObject, QtWidgets.QCheckBox):
    pass


@pythonQtClass
class ctkComboBox(PythonQtObject, QtWidgets.QComboBox):
    pass


@pythonQtClass
class ctkCheckablePushButton(PythonQtObject, QtWidgets.QPushButton):
    pass


@pythonQtClass
class ctkSliderWidget(PythonQtObject, QtWidgets.QDoubleSpinBox):
    pass


@pythonQtClass
class ctkDoubleSlider(PythonQtObject, QtWidgets.QSlider):
    pass


@pythonQtClass
class ctkDoubleSpinBox(PythonQtObject, QtWidgets.QDoubleSpinBox):
    pass


@pythonQtClass
class ctkRangeWidget(PythonQtObject, QtWidgets.QWidget):
    pass


@pythonQtClass
class ctkDoubleRangeSlider(PythonQtObject, QtWidgets.QWidget):
    pass


@pythonQtClass
class ctkDirectoryButton(PythonQtObject, QtWidgets.QPushButton):
    pass


@pythonQtClass
class ctkColorPickerButton(PythonQtObject, QtWidgets.QPushButton):
    pass


def widgetClasses() -> dict[str, type]:
    """The widget classes defined in this module, by CTK class name."""
    return {name: value for name, value in globals().items() if name.startswith("ctk") and isinstance(value, type)}
