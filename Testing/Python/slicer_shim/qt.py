"""Test-only ``qt`` module: PySide6 widgets that behave as PythonQt's do inside 3D Slicer.

Slicer's Python code (and the modules) use PythonQt's conventions, which PySide6 lacks:

* Qt properties are attributes: ``label.text = "..."``, ``spinBox.value``, ``button.enabled``;
* signals connect by C++ signature: ``button.connect("clicked(bool)", slot)``;
* ``widget.name`` is the object name (``slicer.util.childWidgetVariables`` relies on it);
* ``qt.QUiLoader`` builds Slicer's own widget classes from a ``.ui`` file and makes the file's
  ``mrmlSceneChanged(vtkMRMLScene*)`` connections.

Each widget class here is the PySide6 class with those three additions, so
``type(widget) == qt.QCheckBox`` holds for a widget loaded from a ``.ui`` file, as the parameter
node wrapper's GUI connectors require. Anything not defined here is PySide6's own class.
"""

from __future__ import annotations

import functools
import os
import xml.etree.ElementTree as ElementTree
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from PySide6 import QtCore, QtGui, QtWidgets  # noqa: E402
from PySide6.QtUiTools import QUiLoader as _PySideUiLoader  # noqa: E402

#: Qt properties PythonQt code reads and writes as attributes (only those a class has are added).
#: A fixed list, not every property: a Python attribute named like a virtual getter (``sizeHint``)
#: would be taken by PySide6 for an override.
ATTRIBUTE_PROPERTIES = (
    "enabled", "visible", "toolTip", "text", "title", "checked", "checkable", "value", "minimum",
    "maximum", "singleStep", "decimals", "currentIndex", "currentText", "currentData", "count",
    "placeholderText", "plainText", "format", "readOnly", "windowTitle",
)


def _connectBySignature(qobject, signature: str, slot) -> bool:
    """``qobject.connect("valueChanged(int)", slot)``: connect the signal named before the '('."""
    getattr(qobject, signature.split("(", 1)[0]).connect(slot)
    return True


def _disconnectBySignature(qobject, signature: str, slot) -> bool:
    getattr(qobject, signature.split("(", 1)[0]).disconnect(slot)
    return True


class PythonQtObject:
    """Mixin giving a PySide6 class PythonQt's ``name`` and string-signature ``connect``."""

    def __getattribute__(self, attribute: str) -> Any:
        # PySide6 resolves connect/disconnect before the class dictionary, so they are caught here.
        if attribute == "connect":
            return functools.partial(_connectBySignature, self)
        if attribute == "disconnect":
            return functools.partial(_disconnectBySignature, self)
        return super().__getattribute__(attribute)

    @property
    def name(self) -> str:
        return QtCore.QObject.objectName(self)

    @name.setter
    def name(self, value: str) -> None:
        QtCore.QObject.setObjectName(self, value)


def _qtPropertyAttribute(propertyName: str) -> property:
    return property(
        lambda self: QtCore.QObject.property(self, propertyName),
        lambda self, value: QtCore.QObject.setProperty(self, propertyName, value),
    )


def pythonQtClass(cls: type) -> type:
    """Class decorator: add :data:`ATTRIBUTE_PROPERTIES` the Qt class has as attributes."""
    meta = cls.staticMetaObject
    for propertyName in ATTRIBUTE_PROPERTIES:
        if meta.indexOfProperty(propertyName) >= 0:
            setattr(cls, propertyName, _qtPropertyAttribute(propertyName))
    return cls


@pythonQtClass
class QObject(PythonQtObject, QtCore.QObject):
    pass


@pythonQtClass
class QTimer(PythonQtObject, QtCore.QTimer):
    pass


@pythonQtClass
class QWidget(PythonQtObject, QtWidgets.QWidget):
    pass


@pythonQtClass
class QFrame(PythonQtObject, QtWidgets.QFrame):
    pass


@pythonQtClass
class QGroupBox(PythonQtObject, QtWidgets.QGroupBox):
    pass


@pythonQtClass
class QLabel(PythonQtObject, QtWidgets.QLabel):
    pass


@pythonQtClass
class QPushButton(PythonQtObject, QtWidgets.QPushButton):
    pass


@pythonQtClass
class QToolButton(PythonQtObject, QtWidgets.QToolButton):
    pass


@pythonQtClass
class QCheckBox(PythonQtObject, QtWidgets.QCheckBox):
    pass


@pythonQtClass
class QRadioButton(PythonQtObject, QtWidgets.QRadioButton):
    pass


@pythonQtClass
class QComboBox(PythonQtObject, QtWidgets.QComboBox):
    pass


@pythonQtClass
class QLineEdit(PythonQtObject, QtWidgets.QLineEdit):
    pass


@pythonQtClass
class QSpinBox(PythonQtObject, QtWidgets.QSpinBox):
    pass


@pythonQtClass
class QDoubleSpinBox(PythonQtObject, QtWidgets.QDoubleSpinBox):
    pass


@pythonQtClass
class QSlider(PythonQtObject, QtWidgets.QSlider):
    pass


@pythonQtClass
class QProgressBar(PythonQtObject, QtWidgets.QProgressBar):
    pass


@pythonQtClass
class QTextEdit(PythonQtObject, QtWidgets.QTextEdit):
    pass


@pythonQtClass
class QPlainTextEdit(PythonQtObject, QtWidgets.QPlainTextEdit):
    pass


class QUiLoader(_PySideUiLoader):
    """Loads a ``.ui`` file with the widget classes of this shim, ``ctk`` and ``slicer``.

    ``widgetClasses`` maps a class name of the file to the class to create; a name it lacks is
    created by PySide6 (layouts, spacers). The file's ``<connections>`` are made after loading,
    by signal and slot name (Qt Designer writes C++ signatures such as
    ``mrmlSceneChanged(vtkMRMLScene*)`` that PySide6 cannot resolve for Python signals).
    Properties whose value is an enum or flag set of a CTK or Slicer class
    (``ctkPathLineEdit::Dirs``) are dropped: PySide6 cannot resolve those types either.
    """

    #: Filled by the shim's ``install``: this module's widgets, ``ctk``'s and Slicer's.
    widgetClasses: dict[str, type] = {}

    def createWidget(self, className, parent=None, name=""):
        widgetClass = self.widgetClasses.get(className)
        if widgetClass is None:
            return super().createWidget(className, parent, name)
        widget = widgetClass(parent)
        widget.setObjectName(name)
        return widget

    def load(self, device, parentWidget=None):
        document = ElementTree.fromstring(bytes(device.readAll()))
        connections = document.find("connections")
        if connections is not None:
            document.remove(connections)
        for element in document.iter():
            for child in list(element):
                if child.tag == "property" and _isSlicerEnumValue(child):
                    element.remove(child)
        buffer = QtCore.QBuffer()
        buffer.setData(ElementTree.tostring(document))
        buffer.open(QtCore.QIODevice.ReadOnly)
        widget = super().load(buffer, parentWidget)
        for connection in [] if connections is None else connections.iter("connection"):
            sender = _objectNamed(widget, connection.findtext("sender"))
            receiver = _objectNamed(widget, connection.findtext("receiver"))
            signalName = connection.findtext("signal").split("(", 1)[0]
            slotName = connection.findtext("slot").split("(", 1)[0]
            getattr(sender, signalName).connect(getattr(receiver, slotName))
        return widget


def _isSlicerEnumValue(propertyElement) -> bool:
    value = propertyElement.find("set")
    value = value if value is not None else propertyElement.find("enum")
    return value is not None and (value.text or "").startswith(("ctk", "qMRML", "qSlicer"))


def _objectNamed(root, objectName: str):
    if QtCore.QObject.objectName(root) == objectName:
        return root
    found = root.findChild(QtCore.QObject, objectName)
    if found is None:
        raise RuntimeError(f"the .ui file connects {objectName!r}, which it does not define")
    return found


def widgetClasses() -> dict[str, type]:
    """The widget classes defined in this module, by Qt class name."""
    return {name: value for name, value in globals().items() if isinstance(value, type) and issubclass(value, PythonQtObject) and value is not PythonQtObject}


def __getattr__(attribute: str) -> Any:
    """Everything else (``QFile``, ``QSettings``, ``Qt``, layouts...) is PySide6's own."""
    for qtModule in (QtWidgets, QtGui, QtCore):
        if hasattr(qtModule, attribute):
            return getattr(qtModule, attribute)
    raise AttributeError(f"module 'qt' (test shim) has no attribute {attribute!r}")
