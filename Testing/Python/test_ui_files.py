"""The modules' Qt Designer files load, and hold every widget the module code uses.

Loaded with PySide6's ``QUiLoader`` on the offscreen platform (no display needed). Slicer's own
widgets (``qMRMLNodeComboBox``, ``ctkCollapsibleButton``, ...) do not exist outside Slicer; each
is created as the plain Qt widget it looks most like, or else the base class its ``.ui`` file
declares, so the file's structure, names and properties are still checked. The panels rendered
this way are the screenshots in ``docs/images`` (rewrite them with ``L3LOCATOR_UPDATE_DOCS_IMAGES=1``).
"""

from __future__ import annotations

import ast
import os
import re
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
QtUiTools = pytest.importorskip("PySide6.QtUiTools", reason="needs PySide6 (PySide6-Essentials)")
from PySide6.QtCore import QFile, QObject, QtMsgType, qInstallMessageHandler  # noqa: E402
from PySide6.QtWidgets import QApplication, QComboBox, QGroupBox, QWidget  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MODULES = {
    "L3Locator": (ROOT / "L3Locator" / "L3Locator.py", ROOT / "L3Locator" / "Resources" / "UI" / "L3Locator.ui"),
    "L3LocatorTraining": (
        ROOT / "L3LocatorTraining" / "L3LocatorTraining.py",
        ROOT / "L3LocatorTraining" / "Resources" / "UI" / "L3LocatorTraining.ui",
    ),
}
#: Parameter node fields deliberately not bound to a widget (set by code, not typed by the user).
UNBOUND_FIELDS = {"L3Locator": {"modelPath"}, "L3LocatorTraining": {"trainedModelPath", "reportPath"}}
#: Plain Qt stand-ins that look like the Slicer widgets, for checking and for the screenshots.
LOOK_ALIKES = {
    "ctkCollapsibleButton": "QGroupBox",
    "ctkPathLineEdit": "QLineEdit",
    "qMRMLNodeComboBox": "QComboBox",
    "qSlicerMarkupsPlaceWidget": "QToolButton",
    "qMRMLWidget": "QWidget",
}
DOCS_IMAGES = ROOT / "docs" / "images"


class SlicerUiLoader(QtUiTools.QUiLoader):
    """A ``QUiLoader`` that creates Slicer's widgets as look-alikes or their declared base class."""

    def __init__(self, extends: dict[str, str]) -> None:
        super().__init__()
        self.extends = extends
        self.created: dict[str, str] = {}

    def createWidget(self, className, parent=None, name=""):
        created = className
        while created not in self.availableWidgets():
            created = LOOK_ALIKES.get(created) or self.extends.get(created)
            assert created, f"{className} is neither a Qt widget nor declared in <customwidgets>"
        widget = super().createWidget(created, parent, name)
        if created != className:
            widget.setProperty("slicerClass", className)
            self.created[name] = className
        return widget


def custom_widget_bases(ui_path: Path) -> dict[str, str]:
    root = ElementTree.parse(ui_path).getroot()
    return {cw.findtext("class"): cw.findtext("extends") for cw in root.iter("customwidget")}


def load_ui(ui_path: Path) -> tuple[QWidget, SlicerUiLoader]:
    loader = SlicerUiLoader(custom_widget_bases(ui_path))
    handle = QFile(str(ui_path))
    assert handle.open(QFile.ReadOnly)
    widget = loader.load(handle)
    handle.close()
    assert widget is not None, loader.errorString()
    for box in widget.findChildren(QGroupBox):  # ctkCollapsibleButton as a group box: title, collapsed state
        if box.property("slicerClass") == "ctkCollapsibleButton":
            box.setTitle(str(box.property("text") or ""))
            if box.property("collapsed"):
                for child in box.findChildren(QWidget):
                    child.hide()
    return widget, loader


def names_used_by(source: Path) -> set[str]:
    """Every ``self.ui.<name>`` in a module file."""
    return set(re.findall(r"self\.ui\.(\w+)", source.read_text(encoding="utf-8")))


def parameter_node_fields(source: Path) -> set[str]:
    """Fields of the ``@parameterNodeWrapper`` class of a module file."""
    tree = ast.parse(source.read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list):
            return {item.target.id for item in node.body if isinstance(item, ast.AnnAssign)}
    raise AssertionError(f"no @parameterNodeWrapper class in {source}")


@pytest.fixture(scope="module", autouse=True)
def application():
    def quiet(kind, context, message):  # the look-alikes lack Slicer's signals and set-properties
        if kind in (QtMsgType.QtWarningMsg, QtMsgType.QtInfoMsg) and ("mrmlSceneChanged" in message or "set-type property" in message or "QObject::connect" in message):
            return
        print(message)

    previous = qInstallMessageHandler(quiet)
    app = QApplication.instance() or QApplication([])
    yield app
    qInstallMessageHandler(previous)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_ui_file_loads_with_slicer_widgets_in_place(module):
    _, ui_path = MODULES[module]
    widget, loader = load_ui(ui_path)
    assert widget.objectName() == module
    declared = set(custom_widget_bases(ui_path))
    assert set(loader.created.values()) <= declared
    assert {"qMRMLWidget", "ctkCollapsibleButton", "ctkPathLineEdit"} <= set(loader.created.values())


@pytest.mark.parametrize("module", sorted(MODULES))
def test_every_widget_the_code_uses_exists(module):
    source, ui_path = MODULES[module]
    widget, _ = load_ui(ui_path)
    present = {child.objectName() for child in widget.findChildren(QObject)}
    used = names_used_by(source)
    assert len(used) >= 10
    assert sorted(used - present) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_parameter_names_match_the_parameter_node(module):
    source, ui_path = MODULES[module]
    widget, _ = load_ui(ui_path)
    bound = {child.property("SlicerParameterName") for child in widget.findChildren(QWidget)} - {None}
    fields = parameter_node_fields(source)
    assert sorted(bound - fields) == []  # a name the wrapper lacks would break connectGui
    assert fields - bound == UNBOUND_FIELDS[module]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_connections_name_existing_widgets(module):
    _, ui_path = MODULES[module]
    widget, _ = load_ui(ui_path)
    present = {widget.objectName()} | {child.objectName() for child in widget.findChildren(QObject)}
    for connection in ElementTree.parse(ui_path).getroot().iter("connection"):
        assert connection.findtext("sender") in present and connection.findtext("receiver") in present


def dress_for_screenshot(module: str, widget: QWidget) -> None:
    """Example contents, as after a run, so the documentation picture shows what the user sees."""
    def set_combo(name: str, text: str) -> None:
        widget.findChild(QComboBox, name).addItem(text)

    if module == "L3Locator":
        set_combo("inputSelector", "CT abdomen")
        set_combo("modelComboBox", "Default (shipped)")
        set_combo("markupSelector", "CT abdomen L3")
        widget.findChild(QWidget, "resultLabel").setText("L3 at slice 57 (range 52–62 of 120), confidence 0.91, flags: none.")
        widget.findChild(QWidget, "progressBar").setValue(100)
        widget.findChild(QWidget, "markupPlaceWidget").setText("✚")
        widget.findChild(QWidget, "trainingFolderPathLineEdit").setText("/data/L3/training")
        widget.findChild(QWidget, "annotatorLineEdit").setText("jdoe")
        widget.findChild(QWidget, "findL3Button").setEnabled(True)
        widget.findChild(QWidget, "bodyCompositionLabel").setText("Muscle 133.8 cm² (33 HU), IMAT 9.0, VAT 135.2, SAT 224.8 cm²; SMI 45.2 cm²/m².")
    else:
        set_combo("startFromComboBox", "shipped model")
        set_combo("trainingModeComboBox", "quick adapt")
        set_combo("deviceComboBox", "auto")
        widget.findChild(QWidget, "dataFolderPathLineEdit").setText("/data/L3/training")
        widget.findChild(QWidget, "folderSummaryLabel").setText("40 case(s): 412 L3 slices, 5873 other slices.")
        widget.findChild(QWidget, "progressBar").setValue(35)
        widget.findChild(QWidget, "statusLabel").setText("Trial 11 of 30, epoch 4 of 10 · best F1 0.871 (1/F1 1.15) · about 38 min left")
        widget.findChild(QWidget, "cancelButton").setEnabled(True)
        widget.findChild(QWidget, "modelNameLineEdit").setText("L3Locator-20261124-2140")


@pytest.mark.parametrize("module", sorted(MODULES))
def test_panel_renders(module, tmp_path):
    _, ui_path = MODULES[module]
    widget, _ = load_ui(ui_path)
    dress_for_screenshot(module, widget)
    widget.resize(400, widget.sizeHint().height())
    image = widget.grab().toImage()
    assert image.width() == 400 and image.height() > 300
    colours = {image.pixel(x, y) for x in range(0, image.width(), 7) for y in range(0, image.height(), 7)}
    assert len(colours) > 20  # text and frames were drawn, not a blank panel
    assert image.save(str(tmp_path / f"{module}_panel.png"))
    if os.environ.get("L3LOCATOR_UPDATE_DOCS_IMAGES") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        assert image.save(str(DOCS_IMAGES / f"{module}_panel.png"))
