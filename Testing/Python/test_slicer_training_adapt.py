"""The L3LocatorTraining panel's adaptation choices on Slicer's real Python layer, headless (the
set-up of ``test_slicer_modules.py``): "Start from" and "Training" are bound through the
parameter node, reach the ``l3locator train`` command line, and the results panel shows the
parent-vs-adapted comparison, with a model no better than its parent not offered as the one to
use. Skipped where ``../shared`` is absent."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

slicer = pytest.importorskip("slicer", reason="needs the slicer-core wheel")
pytest.importorskip("PySide6.QtUiTools", reason="needs PySide6 (PySide6-Essentials)")
sys.path.insert(0, str(Path(__file__).resolve().parent))
import slicer_shim  # noqa: E402

if not slicer_shim.available():
    pytest.skip(f"Slicer's Python layer not found at {slicer_shim.SLICER_PYTHON}", allow_module_level=True)
from slicer_shim.fixtures import L3Locator, L3LocatorTraining, makeWidget, session, waitFor  # noqa: E402, F401 (fixtures)


@pytest.fixture
def widget(makeWidget, L3LocatorTraining):
    return makeWidget(L3LocatorTraining, "L3LocatorTraining")


def comparison(recommended: bool) -> dict:
    return {"parent_model": {"name": "default.pt", "sha256": "f" * 64}, "cases": 10, "verdict": "better" if recommended else "worse",
            "recommended": recommended, "parent": {"mean_error_slices": 4.2, "failures": 0},
            "adapted": {"mean_error_slices": 1.1 if recommended else 5.0, "failures": 0},
            "cases_improved": 7 if recommended else 1, "cases_worse": 1 if recommended else 6}


def recordingStart(widget, tmp_path: Path, recommended: bool) -> list[list[str]]:
    """Replace the process start: record the command, run a stand-in that prints an adaptation
    run's ``done`` line (with its comparison) and writes its report."""
    from L3LocatorTrainingLib.process import TrainingRun

    run = tmp_path / "run"
    run.mkdir(exist_ok=True)
    model, reportFile = run / "final_model.pt", run / "cv_report.json"
    report = {"summary": {"cases": 10, "failures": 0, "error_slices": {"mean": 1.1, "sd": 0.9, "median": 1.0, "max": 3.0},
                          "within_2": 0.9, "slice_f1": 0.8},
              "cases": [{"case": "a", "true_index": 12.0, "predicted_index": 12, "failure": False}]}
    warnings = [] if recommended else ["the adapted model is worse than its parent default.pt on the held-out folds"]
    done = {"stage": "done", "trial": None, "trials": None, "epoch": None, "epochs": None, "loss": None, "objective": None,
            "best_objective": None, "eta_s": 0.0, "message": "", "model": str(model), "report": str(reportFile), "validated": True,
            "warnings": warnings, "parent_model": {"name": "default.pt", "sha256": "f" * 64}, "comparison": comparison(recommended),
            "recommended": recommended}
    script = "\n".join([
        "import pathlib",
        f"pathlib.Path({str(model)!r}).write_bytes(b'model')",
        f"pathlib.Path({str(reportFile)!r}).write_text({json.dumps(json.dumps(report))})",
        f"print('L3LOCATOR_PROGRESS ' + {json.dumps(json.dumps(done))}, flush=True)",
    ])
    commands: list[list[str]] = []

    def start(command):
        commands.append(command)
        return TrainingRun([sys.executable, "-c", script])

    widget.logic.startTraining = start
    return commands


def option(command: list[str], name: str) -> str | None:
    return command[command.index(name) + 1] if name in command else None


def test_adapting_the_shipped_model_is_the_default_and_reaches_the_command_line(session, widget, tmp_path):
    ui, node = widget.ui, widget._parameterNode
    assert [ui.startFromComboBox.itemText(i) for i in range(ui.startFromComboBox.count)] == ["shipped model", "another model", "scratch"]
    assert [ui.trainingModeComboBox.itemText(i) for i in range(ui.trainingModeComboBox.count)] == ["quick adapt", "full optimisation"]
    assert (node.startFrom, node.trainingMode, node.freezeLayers) == ("shipped model", "quick adapt", 0)
    ui.dataFolderPathLineEdit.currentPath = str(tmp_path / "data")
    ui.outputFolderPathLineEdit.currentPath = str(tmp_path / "run")
    assert ui.startButton.enabled and not ui.initModelPathLineEdit.enabled and ui.freezeLayersSpinBox.enabled
    assert not ui.trialsSpinBox.enabled  # quick: no optimisation trials
    ui.freezeLayersSpinBox.value = 2
    assert node.freezeLayers == 2

    commands = recordingStart(widget, tmp_path, recommended=False)
    ui.startButton.click()
    waitFor(session, lambda: widget._run is None)
    command = commands[0]
    assert command[2:5] == ["l3locator.cli", "train", str(tmp_path / "data")]
    assert (option(command, "--init-model"), option(command, "--freeze-layers")) == ("default", "2")
    assert "--quick" in command and "--trials" not in command

    # The adapted model was worse than its parent: said everywhere, and not offered as the model to use.
    assert ui.statusLabel.text == f"Done, but not recommended over default.pt. Model: {tmp_path / 'run' / 'final_model.pt'}"
    lines = ui.resultsLabel.text.splitlines()
    assert lines[1] == ("Against default.pt on the same 10 held-out case(s): mean L3 error 4.20 → 5.00 slices (1 improved, 6 worse). "
                        "NOT RECOMMENDED: the adapted model is worse than default.pt; keep using default.pt.")
    assert lines[2] == "Warning: the adapted model is worse than its parent default.pt on the held-out folds"
    assert node.modelName == "" and ui.saveModelButton.text == "Save anyway (not recommended)" and ui.saveModelButton.enabled


def test_a_better_adapted_model_is_offered_and_other_starting_points_reach_the_command_line(session, widget, tmp_path):
    ui, node = widget.ui, widget._parameterNode
    ui.dataFolderPathLineEdit.currentPath = str(tmp_path / "data")
    ui.outputFolderPathLineEdit.currentPath = str(tmp_path / "run")
    commands = recordingStart(widget, tmp_path, recommended=True)

    ui.startFromComboBox.currentIndex = 1  # another model: needs its file
    ui.trainingModeComboBox.currentIndex = 1  # full optimisation
    assert (node.startFrom, node.trainingMode) == ("another model", "full optimisation")
    assert not ui.startButton.enabled and ui.startButton.toolTip == "Choose the model file to start from"
    ui.initModelPathLineEdit.currentPath = str(tmp_path / "site.pt")
    assert node.initModelPath == tmp_path / "site.pt" and ui.startButton.enabled and ui.trialsSpinBox.enabled
    ui.trialsSpinBox.value = 12
    ui.startButton.click()
    waitFor(session, lambda: widget._run is None)
    assert option(commands[0], "--init-model") == str(tmp_path / "site.pt") and option(commands[0], "--trials") == "12"
    assert "--quick" not in commands[0] and "--freeze-layers" not in commands[0]
    assert ui.statusLabel.text == f"Done. Model: {tmp_path / 'run' / 'final_model.pt'}"
    assert ui.resultsLabel.text.splitlines()[1].endswith("(7 improved, 1 worse). Recommended: use the adapted model.")
    assert node.modelName.startswith("L3Locator-") and ui.saveModelButton.text == "Save model for L3Locator"

    ui.startFromComboBox.currentIndex = 2  # scratch: nothing to start from, nothing to freeze
    node.freezeLayers = 3
    assert not ui.freezeLayersSpinBox.enabled and not ui.initModelPathLineEdit.enabled
    ui.startButton.click()
    waitFor(session, lambda: widget._run is None)
    assert "--init-model" not in commands[1] and "--freeze-layers" not in commands[1] and option(commands[1], "--trials") == "12"
