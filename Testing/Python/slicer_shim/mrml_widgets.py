"""Test-only stand-ins for Slicer's MRML widgets (``slicer.qMRML*``, ``slicer.qSlicer*``), over PySide6.

They work on a real MRML scene (``slicer-core``) as far as the modules use them:

* ``qMRMLWidget``: holds the scene and emits ``mrmlSceneChanged`` (the ``.ui`` files connect it
  to their node selectors);
* ``qMRMLNodeComboBox``: lists the scene's nodes of ``nodeTypes`` and follows the scene as nodes
  come and go, like the real one: without ``noneEnabled`` it always selects a node when there
  is one; ``currentNodeChanged`` is emitted whenever the selected node changes;
* ``qSlicerMarkupsPlaceWidget``: the markups node to place, and place mode switched on the
  scene's selection and interaction nodes as the real widget does.

``qMRMLSliderWidget``, ``qMRMLSpinBox`` and ``qMRMLRangeWidget`` exist only because the parameter
node wrapper's GUI connectors compare widget types against them.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

import slicer

from .qt import PythonQtObject, pythonQtClass

SELECTION_NODE_ID = "vtkMRMLSelectionNodeSingleton"
INTERACTION_NODE_ID = "vtkMRMLInteractionNodeSingleton"


@pythonQtClass
class qMRMLWidget(PythonQtObject, QtWidgets.QWidget):
    mrmlSceneChanged = QtCore.Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._scene = None

    def setMRMLScene(self, scene) -> None:
        self._scene = scene
        self.mrmlSceneChanged.emit(scene)

    def mrmlScene(self):
        return self._scene


@pythonQtClass
class qMRMLNodeComboBox(PythonQtObject, QtWidgets.QComboBox):
    currentNodeChanged = QtCore.Signal(object)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._nodeTypes: list[str] = []
        self._noneEnabled = False
        self._showChildNodeTypes = True
        self._scene = None
        self._sceneObservations: list[int] = []
        self._nodes: list = []
        self._current = None
        self.currentIndexChanged.connect(self._onIndexChanged)

    # Properties the .ui files set (Qt properties, so that QUiLoader reaches them).
    def _getNodeTypes(self) -> list[str]:
        return list(self._nodeTypes)

    def _setNodeTypes(self, nodeTypes) -> None:
        self._nodeTypes = [str(name) for name in nodeTypes]
        self._refresh()

    nodeTypes = QtCore.Property("QStringList", _getNodeTypes, _setNodeTypes)
    noneEnabled = QtCore.Property(bool, lambda self: self._noneEnabled, lambda self, value: self._setFlag("_noneEnabled", value))
    showChildNodeTypes = QtCore.Property(bool, lambda self: self._showChildNodeTypes, lambda self, value: self._setFlag("_showChildNodeTypes", value))

    def _setFlag(self, attribute: str, value: bool) -> None:
        setattr(self, attribute, bool(value))
        self._refresh()

    def setMRMLScene(self, scene) -> None:
        if self._scene is not None:
            for tag in self._sceneObservations:
                self._scene.RemoveObserver(tag)
        self._scene = scene
        self._sceneObservations = [] if scene is None else [
            scene.AddObserver(event, lambda caller, eventName: self._refresh())
            for event in (slicer.vtkMRMLScene.NodeAddedEvent, slicer.vtkMRMLScene.NodeRemovedEvent, slicer.vtkMRMLScene.EndCloseEvent)
        ]
        self._refresh()

    def mrmlScene(self):
        return self._scene

    def currentNode(self):
        return self._current

    def currentNodeID(self) -> str:
        return self._current.GetID() if self._current is not None else ""

    def setCurrentNode(self, node) -> None:
        self._refresh()
        if node is None or node in self._nodes:
            self.setCurrentIndex(self._indexOf(node))
            self._select(node)

    def setCurrentNodeID(self, nodeID: str) -> None:
        self.setCurrentNode(self._scene.GetNodeByID(nodeID) if self._scene is not None and nodeID else None)

    def nodes(self) -> list:
        """The selectable nodes, in scene order."""
        return list(self._nodes)

    def _shows(self, node) -> bool:
        if node.GetHideFromEditors():
            return False
        if self._showChildNodeTypes:
            return any(node.IsA(name) for name in self._nodeTypes)
        return node.GetClassName() in self._nodeTypes

    def _indexOf(self, node) -> int:
        if node is None:
            return 0 if self._noneEnabled else -1
        return self._nodes.index(node) + (1 if self._noneEnabled else 0)

    def _refresh(self) -> None:
        scene = self._scene
        nodes = [] if scene is None else [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
        self._nodes = [node for node in nodes if self._shows(node)]
        current = self._current if self._current in self._nodes else None
        if current is None and not self._noneEnabled and self._nodes:
            current = self._nodes[0]
        blocked = self.blockSignals(True)
        self.clear()
        if self._noneEnabled:
            self.addItem("None")
        for node in self._nodes:
            self.addItem(node.GetName())
        self.setCurrentIndex(self._indexOf(current))
        self.blockSignals(blocked)
        self._select(current)

    def _onIndexChanged(self, index: int) -> None:
        offset = 1 if self._noneEnabled else 0
        self._select(self._nodes[index - offset] if 0 <= index - offset < len(self._nodes) else None)

    def _select(self, node) -> None:
        if node is not self._current:
            self._current = node
            self.currentNodeChanged.emit(node)


@pythonQtClass
class qSlicerMarkupsPlaceWidget(PythonQtObject, QtWidgets.QWidget):
    HidePlaceMultipleMarkupsOption, ShowPlaceMultipleMarkupsOption, ForcePlaceSingleMarkup, ForcePlaceMultipleMarkups = range(4)

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self._scene = None
        self._node = None
        self.placeMultipleMarkups = self.ShowPlaceMultipleMarkupsOption

    def setMRMLScene(self, scene) -> None:
        self._scene = scene

    def currentNode(self):
        return self._node

    def setCurrentNode(self, node) -> None:
        self._node = node

    def setPlaceModeEnabled(self, enabled: bool) -> None:
        """Put the scene's interaction node in place mode for the current node (or back to view)."""
        selectionNode = self._scene.GetNodeByID(SELECTION_NODE_ID)
        interactionNode = self._scene.GetNodeByID(INTERACTION_NODE_ID)
        if enabled and self._node is not None:
            selectionNode.SetReferenceActivePlaceNodeClassName(self._node.GetClassName())
            selectionNode.SetActivePlaceNodeID(self._node.GetID())
            interactionNode.SetPlaceModePersistence(self.placeMultipleMarkups == self.ForcePlaceMultipleMarkups)
            interactionNode.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.Place)
        else:
            interactionNode.SetCurrentInteractionMode(slicer.vtkMRMLInteractionNode.ViewTransform)

    def placeModeEnabled(self) -> bool:
        selectionNode = self._scene.GetNodeByID(SELECTION_NODE_ID)
        interactionNode = self._scene.GetNodeByID(INTERACTION_NODE_ID)
        return (
            self._node is not None
            and interactionNode.GetCurrentInteractionMode() == slicer.vtkMRMLInteractionNode.Place
            and selectionNode.GetActivePlaceNodeID() == self._node.GetID()
        )


@pythonQtClass
class qMRMLSliderWidget(PythonQtObject, QtWidgets.QDoubleSpinBox):
    pass


@pythonQtClass
class qMRMLSpinBox(PythonQtObject, QtWidgets.QDoubleSpinBox):
    pass


@pythonQtClass
class qMRMLRangeWidget(PythonQtObject, QtWidgets.QWidget):
    pass


def widgetClasses() -> dict[str, type]:
    """The widget classes defined in this module, by Slicer class name."""
    return {name: value for name, value in globals().items() if name.startswith(("qMRML", "qSlicer")) and isinstance(value, type)}

