"""Bayesian optimisation: the trial log, resuming, the control, the best model file, and a small
``l3locator train`` run on synthetic phantoms whose model ``find_l3`` then uses."""

import io
import json
import math
import os
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch

from conftest import TINY
from l3locator.cli import main
from l3locator.errors import L3LocatorError
from l3locator.modelfile import L3Model, load_model
from l3locator.phantoms import generate_phantom, write_phantom_case
from l3locator.pipeline import find_l3
from l3locator.training import optimize as optimize_module
from l3locator.training.cache import PreparedCase
from l3locator.training.metrics import OBJECTIVE_AT_ZERO_F1, SliceCounts, objective_from_f1
from l3locator.training.optimize import N_INITIAL_POINTS, optimise, read_trials
from l3locator.training.progress import PREFIX
from l3locator.training.train import EpochStats, TrainingBudget, TrainingResult



pytestmark = pytest.mark.usefixtures("one_thread")


# --- the optimisation loop with a fast stand-in for training ---------------------------------------

def fake_cases(count: int = 6) -> list[PreparedCase]:
    return [PreparedCase(f"c{n}", f"c{n}", f"c{n}.nii.gz", 40, 5.0, 1, (10, 15), Path(f"c{n}.npy")) for n in range(count)]


@pytest.fixture
def fake_training(monkeypatch):
    """train_model / validation_counts replaced by a smooth function of the parameters."""
    trained = []

    def train_model(cases, params, budget, *, on_epoch=None):
        trained.append((params, budget.seed))
        if on_epoch:
            on_epoch(1, 0.5)
        model = L3Model(torch.nn.Linear(2, 2), TINY, arch="resnet18")
        model.params = params
        return TrainingResult(model, [EpochStats(10, 2, 0, 0.5, 0.01)], 0.01, {})

    def validation_counts(model, cases, *, batch_size=64, device=None):
        p = model.params
        closeness = 1.0 / (1.0 + abs(math.log10(p.learning_rate) + 2.5) + abs(p.class_weight - 0.7))
        tp = int(round(100 * closeness))
        return SliceCounts(tp=tp, fp=100 - tp, fn=100 - tp)

    monkeypatch.setattr(optimize_module, "train_model", train_model)
    monkeypatch.setattr(optimize_module, "validation_counts", validation_counts)
    return trained


def budget(**overrides) -> TrainingBudget:
    values = {"epochs": 1, "arch": "resnet18", "preprocessing": TINY, "device": "cpu", "seed": 7}
    values.update(overrides)
    return TrainingBudget(**values)


def test_resumed_run_equals_an_uninterrupted_one(tmp_path, fake_training):
    trials = N_INITIAL_POINTS + 2  # past the random start, so the Gaussian-process steps are resumed too
    straight = optimise(fake_cases(), tmp_path / "straight", trials=trials, budget=budget())
    optimise(fake_cases(), tmp_path / "resumed", trials=4, budget=budget())
    first_part = (tmp_path / "resumed" / "trials.jsonl").read_text().splitlines()
    calls_before = len(fake_training)
    resumed = optimise(fake_cases(), tmp_path / "resumed", trials=trials, budget=budget(), resume=True)
    assert len(fake_training) - calls_before == trials - 4  # finished trials were not re-run
    assert (tmp_path / "resumed" / "trials.jsonl").read_text().splitlines()[:4] == first_part
    assert [r.trial for r in resumed.records] == list(range(1, trials + 1))
    assert [r.point for r in resumed.records] == [r.point for r in straight.records]
    assert len({json.dumps(r.point) for r in resumed.records}) == trials
    assert [r.seed for r in resumed.records] == [7 + n for n in range(1, trials + 1)]
    assert resumed.best.objective == min(r.objective for r in resumed.records)
    best_file = tmp_path / "resumed" / "best_model.pt"
    stored = torch.load(best_file, weights_only=True)["provenance"]
    assert stored["trial"] == resumed.best.trial and stored["metrics"]["objective"] == resumed.best.objective


def test_a_run_is_not_overwritten_and_resumes_only_with_the_same_settings(tmp_path, fake_training):
    optimise(fake_cases(), tmp_path, trials=2, budget=budget())
    with pytest.raises(L3LocatorError, match="--resume"):
        optimise(fake_cases(), tmp_path, trials=3, budget=budget())
    with pytest.raises(L3LocatorError, match="budget"):
        optimise(fake_cases(), tmp_path, trials=3, budget=budget(epochs=2), resume=True)
    with pytest.raises(L3LocatorError, match="control"):
        optimise(fake_cases(), tmp_path, trials=3, budget=budget(), resume=True, control=True)
    # where it runs may change
    resumed = optimise(fake_cases(), tmp_path, trials=3, budget=budget(precision="fp32"), resume=True)
    assert len(resumed.records) == 3


def test_control_optimises_five_parameters_with_fixed_oversampling_and_class_weight(tmp_path, fake_training):
    result = optimise(fake_cases(), tmp_path, trials=3, budget=budget(), control=True)
    assert all(len(r.point) == 5 for r in result.records)
    assert all(r.params["oversampling_rate"] == 0.0 and r.params["class_weight"] == 0.5 for r in result.records)
    assert all(p.oversampling_rate == 0.0 and p.class_weight == 0.5 for p, _ in fake_training)


def test_a_crash_while_logging_leaves_the_log_whole(tmp_path, fake_training, monkeypatch):
    optimise(fake_cases(), tmp_path, trials=2, budget=budget())
    log = tmp_path / "trials.jsonl"
    before = log.read_text()
    run = json.loads((tmp_path / "run.json").read_text(), parse_constant=lambda name: pytest.fail(f"{name} in run.json"))
    assert run["training_cases"] and run["data"]["cases"] == 6

    def power_cut(fd):
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", power_cut)  # every write fails before its file appears
    with pytest.raises(OSError, match="disk gone"):
        optimise(fake_cases(), tmp_path, trials=4, budget=budget(), resume=True)
    assert log.read_text() == before and [r.trial for r in read_trials(log)] == [1, 2]
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no temporary files left


def test_a_damaged_log_line_is_a_clear_error(tmp_path, fake_training):
    optimise(fake_cases(), tmp_path, trials=2, budget=budget())
    log = tmp_path / "trials.jsonl"
    log.write_text(log.read_text() + '{"trial": 3, "par')
    with pytest.raises(L3LocatorError, match="line 3 is not a trial record.*remove that line"):
        read_trials(log)
    log.write_text('{"broken"\n' + log.read_text())
    with pytest.raises(L3LocatorError, match="line 1"):
        read_trials(log)


def test_objective_is_finite_when_f1_is_zero():
    assert objective_from_f1(0.0) == OBJECTIVE_AT_ZERO_F1
    assert objective_from_f1(0.5) == 2.0
    assert SliceCounts(0, 0, 0).f1 == 0.0


# --- a real small run on phantoms, through the command ------------------------------------------------

@pytest.fixture(scope="module")
def phantom_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("phantoms")
    for n in range(5):
        phantom = generate_phantom(500 + n, shape_ij=(64, 64), slice_thickness_mm=5.0, extent="abdomen")
        write_phantom_case(phantom, folder, f"case{n}")
    return folder


def run_cli(args):
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(args)
    lines = [json.loads(line[len(PREFIX) + 1 :]) for line in out.getvalue().splitlines() if line.startswith(PREFIX)]
    return code, lines, err.getvalue()


def test_small_training_run_resumes_and_its_model_is_usable(phantom_folder, tmp_path):
    output = tmp_path / "run"
    common = [str(phantom_folder), "--output-dir", str(output), "--small", "--input-size", "32", "--epochs", "1", "--seed", "3", "--progress", "json"]
    code, lines, err = run_cli(["train", *common, "--trials", "2", "--folds", "0"])
    assert code == 0, err
    assert [r["trial"] for r in lines if r["stage"] == "trial_start"] == [1, 2]
    assert lines[-1]["stage"] == "done" and lines[-1]["report"] is None
    assert lines[-1]["validated"] is False and "final model, not cross-validated" in err
    first = (output / "trials.jsonl").read_text().splitlines()
    assert len(first) == 2

    code, lines, err = run_cli(["train", *common, "--trials", "3", "--folds", "2", "--resume"])
    assert code == 0, err
    assert [r["trial"] for r in lines if r["stage"] == "trial_start"] == [3]  # trials 1 and 2 were not re-run
    log = (output / "trials.jsonl").read_text().splitlines()
    assert log[:2] == first and len(log) == 3
    records = [json.loads(line) for line in log]
    assert len({json.dumps(r["params"], sort_keys=True) for r in records}) == 3
    assert {"params", "objective", "f1", "seconds", "epoch_losses"} <= set(records[2])
    stages = [r["stage"] for r in lines]
    assert "cv_fold" in stages and "epoch" in stages and stages[-1] == "done"
    assert all(r["eta_s"] is None or r["eta_s"] >= 0 for r in lines)
    done = lines[-1]
    assert Path(done["model"]) == output / "final_model.pt" and Path(done["report"]) == output / "cv_report.json"
    report = json.loads(Path(done["report"]).read_text())
    assert len(report["cases"]) == 5 and {r["fold"] for r in report["cases"]} == {1, 2}
    assert done["validated"] is (report["summary"]["failures"] == 0) and done["warnings"] == report["warnings"]

    best = load_model(output / "best_model.pt")
    provenance = best.provenance
    best_record = min(records, key=lambda r: r["objective"])
    assert provenance["kind"] == "best_trial" and provenance["trial"] == best_record["trial"]
    assert provenance["design_parameters"] == best_record["params"]
    assert provenance["metrics"]["validation_f1"] == best_record["f1"]
    assert provenance["data"]["cases"] == 5 and provenance["data"]["l3_slices"] > 0 and provenance["data"]["slices"] > 0
    assert provenance["budget"]["preprocessing"]["input_size"] == 32 and provenance["created"]
    assert provenance["run_seed"] == 3 and provenance["budget"]["seed"] == 3 + best_record["trial"]
    assert best.preprocessing.input_size == 32 and best.arch == "resnet18"

    final = load_model(output / "final_model.pt")
    assert final.provenance["kind"] == "final" and final.provenance["metrics"]["cross_validation"]["cases"] == 5
    assert final.provenance["metrics"]["validated"] is done["validated"]
    assert final.provenance["metrics"]["cross_validation_warnings"] == report["warnings"]
    assert final.provenance["data"]["training_cases"] == [f"case{n}" for n in range(5)]
    assert final.provenance["data"]["folder"] == str(phantom_folder.resolve())
    phantom = generate_phantom(999, shape_ij=(64, 64), slice_thickness_mm=5.0, extent="abdomen")
    result = find_l3(phantom.volume, best, device="cpu")
    assert len(result.slice_probabilities) == phantom.volume.num_slices
    assert all(0.0 <= p <= 1.0 for p in result.slice_probabilities)
    # The file loads through the command too.
    code, _, err = run_cli(["find", str(phantom_folder / "case0.nii.gz"), "--model", str(output / "final_model.pt"), "--json", "--device", "cpu"])
    assert code == 0, err
    # Evaluating the final model on the folder it was trained on is reported as in-sample.
    code, lines, err = run_cli(["evaluate", str(phantom_folder), "--model", str(output / "final_model.pt"), "--output-dir", str(tmp_path / "eval"),
                                "--device", "cpu", "--progress", "json"])
    assert code == 0, err
    evaluated = json.loads((tmp_path / "eval" / "cv_report.json").read_text())
    assert evaluated["in_sample"] is True and lines[-1]["in_sample"] is True
    assert {r["seen_by_model"] for r in evaluated["cases"]} == {"training"}
    assert "WARNING: IN-SAMPLE: 5 of 5 evaluated case(s) were used to make this model (5 to train it;" in err
