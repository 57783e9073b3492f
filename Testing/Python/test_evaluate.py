"""Evaluation reports: per-case rows, the summary recomputed independently, warnings about
failures and in-sample figures, the picture, strict JSON, cross-validation by patient, the
``train`` run's verdict on its final model, the ``evaluate`` command, and (slow) accuracy after
training."""

import io
import json
import statistics
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pytest
import torch
from PIL import Image
from scipy import stats

from conftest import TINY, synthetic_volume
from l3locator.cli import main
from l3locator.labels import L3Label, write_label
from l3locator.modelfile import L3Model
from l3locator.preprocessing import PreprocessingConfig
from l3locator.training.cache import prepare_cases
from l3locator.training.dataset import discover_cases
from l3locator.training.design import DesignParameters
from l3locator.training import evaluate as evaluate_module
from l3locator.training import optimize as optimize_module
from l3locator.training import workflow as workflow_module
from l3locator.training.evaluate import (
    build_report, case_row, cross_validate, evaluate_model, failure_warnings, in_sample_check, summarise, write_report,
)
from l3locator.training.metrics import SliceCounts
from l3locator.training.progress import PREFIX
from l3locator.training.report_plot import FAILURE_STRIP, PLOT_BOX, RED
from l3locator.training.train import EpochStats, TrainingBudget, TrainingResult, train_model
from l3locator.phantoms.writing import write_nifti



pytestmark = pytest.mark.usefixtures("one_thread")




class BigSquareNet(torch.nn.Module):
    """A perfect classifier for :func:`synthetic_volume`: L3 where much of the slice is bone-bright."""

    def forward(self, x):
        bright = (x[:, 1] > 0.9).float().mean(dim=(1, 2))
        logit = (bright - 0.08) * 200.0
        return torch.stack([-logit, logit], dim=1)


class NeverL3Net(torch.nn.Module):
    def forward(self, x):
        return torch.tensor([[5.0, -5.0]]).expand(len(x), 2)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("cases")
    for n in range(4):
        l3 = (5 + 2 * n, 9 + 2 * n)
        write_nifti(synthetic_volume(26, l3, seed=n), root / f"c{n}.nii.gz")
        write_label(L3Label(case=f"c{n}", image=f"c{n}.nii.gz", l3_slice_index=l3[0] + 2, l3_slice_range=l3, source="manual", num_slices=26),
                    root / f"c{n}.l3.json")
    return root


def recompute(rows):
    """The summary numbers from the rows, computed independently of the library."""
    truth_rows = [r for r in rows if r["true_range"] is not None]
    errors = [abs(r["predicted_index"] - (r["true_range"][0] + r["true_range"][1]) / 2) for r in truth_rows]
    mm = [e * r["slice_thickness_mm"] for e, r in zip(errors, truth_rows)]
    tp, fp, fn = (sum(r[k] for r in rows) for k in ("tp", "fp", "fn"))
    out = {
        "mean": statistics.mean(errors), "sd": statistics.stdev(errors) if len(errors) > 1 else None,
        "median": statistics.median(errors), "max": max(errors), "mean_mm": statistics.mean(mm),
        "within_1": sum(e <= 1 for e in errors) / len(errors), "within_2": sum(e <= 2 for e in errors) / len(errors),
        "f1": 2 * tp / (2 * tp + fp + fn),
    }
    answered = [r for r in truth_rows if r["l3_found"]]  # failures have no predicted slice of their own
    true = [(r["true_range"][0] + r["true_range"][1]) / 2 for r in answered]
    pred = [r["predicted_index"] for r in answered]
    fit = stats.linregress(true, pred)
    out.update(slope=fit.slope, intercept=fit.intercept, r2=fit.rvalue ** 2)
    return out


def check_summary(summary, rows):
    expected = recompute(rows)
    assert summary["error_slices"]["mean"] == pytest.approx(expected["mean"])
    assert summary["error_slices"]["median"] == pytest.approx(expected["median"])
    assert summary["error_slices"]["max"] == pytest.approx(expected["max"])
    if expected["sd"] is not None:
        assert summary["error_slices"]["sd"] == pytest.approx(expected["sd"])
    assert summary["error_mm"]["mean"] == pytest.approx(expected["mean_mm"], abs=1e-3)
    assert summary["within_1"] == pytest.approx(expected["within_1"])
    assert summary["within_2"] == pytest.approx(expected["within_2"])
    assert summary["slice_f1"] == pytest.approx(expected["f1"])
    if np.isfinite(expected["slope"]):
        assert summary["regression"]["slope"] == pytest.approx(expected["slope"])
        assert summary["regression"]["intercept"] == pytest.approx(expected["intercept"])
        assert summary["regression"]["r2"] == pytest.approx(expected["r2"])


def row(true_range, predicted, found=True, thickness=2.5, tp=3, fp=1, fn=0, fold=1):
    truth = None if true_range is None else (true_range[0] + true_range[1]) / 2
    error = None if truth is None else abs(predicted - truth)
    return {
        "case": "x", "fold": fold, "num_slices": 100, "slice_thickness_mm": thickness, "true_range": true_range,
        "true_index": truth, "l3_found": found, "predicted_index": predicted, "failure": truth is not None and not found,
        "error_slices": error, "signed_error_slices": None if truth is None else predicted - truth,
        "error_mm": None if error is None else error * thickness, "tp": tp, "fp": fp, "fn": fn,
    }


def test_summary_matches_an_independent_computation():
    rows = [row((10, 14), 12), row((20, 25), 24, fp=0), row((30, 36), 30, tp=1, fn=4), row((40, 44), 99, found=False, tp=0, fn=5),
            row((50, 53), 52, thickness=5.0, fold=2), row(None, 70, fp=2, tp=0)]
    summary = summarise(rows)
    check_summary(summary, rows)
    assert summary["cases"] == 5 and summary["failures"] == 1
    assert summary["cases_without_l3"] == 1 and summary["false_positive_cases"] == 1
    assert summary["regression"]["cases"] == 4  # the failure counts in the errors, not in the fit
    assert summary["error_slices"]["max"] == pytest.approx(99 - 42)


def test_failures_and_false_positives_are_warned_about_and_a_fold_that_found_nothing_is_named():
    rows = [row((10, 14), 12, fold=1), row((20, 24), 99, found=False, fold=1),
            row((30, 34), 99, found=False, fold=2), row((40, 44), 0, found=False, fold=2), row(None, 50, fold=2)]
    for n, r in enumerate(rows):
        r["case"] = f"c{n}"
    warnings = failure_warnings(rows)
    assert len(warnings) == 3
    assert warnings[0].startswith("fold 2: no L3 found in any of its 2 labelled case(s)")
    assert "no L3 found in 3 of 4 labelled case(s) (c1, c2, c3)" in warnings[1]
    assert "L3 found in 1 case(s) labelled without L3 (c4)" in warnings[2]
    assert failure_warnings(rows[:1]) == []
    report = build_report(rows, in_sample=False, warnings=["first"])
    assert report["warnings"] == ["first", *warnings] and report["in_sample"] is False
    assert [(f["fold"], f["cases"], f["failures"]) for f in report["per_fold"]] == [(1, 2, 1), (2, 2, 2)]


def red_pixels(picture, box):
    left, top, right, bottom = box
    pixels = np.asarray(picture.convert("RGB"))[top + 2 : bottom - 1, left + 2 : right - 1].reshape(-1, 3)
    return int(np.sum(np.all(pixels == RED, axis=1)))


def test_the_picture_shows_failures_apart_from_the_fit_and_the_json_is_strict(tmp_path):
    rows = [row((10, 14), 12), row((20, 24), 23), row((30, 34), 31), row((40, 44), 99, found=False, tp=0, fn=5)]
    report = build_report(rows, in_sample=False)
    answered_only = build_report(rows[:3], in_sample=False)
    assert report["summary"]["regression"] == answered_only["summary"]["regression"]
    report["summary"]["slice_f1"] = float("nan")  # a statistic that does not exist is written as null
    json_path, png_path = write_report(report, tmp_path)
    stored = json.loads(json_path.read_text(), parse_constant=lambda name: pytest.fail(f"{name} in the report JSON"))
    assert stored["summary"]["slice_f1"] is None and stored["warnings"] == report["warnings"] and len(stored["warnings"]) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cv_report.json", "cv_report.png"]  # no temporary files left
    strip = (PLOT_BOX[0], FAILURE_STRIP[0], PLOT_BOX[2], FAILURE_STRIP[1])
    with Image.open(png_path) as picture:
        assert red_pixels(picture, PLOT_BOX) == 0  # the failure is not a point of the scatter
        assert red_pixels(picture, strip) > 10  # but a cross in the "no L3 found" strip
    with Image.open(write_report(answered_only, tmp_path / "clean")[1]) as picture:
        assert red_pixels(picture, strip) == 0


def test_a_case_without_an_answer_counts_at_the_far_end(folder):
    model = L3Model(NeverL3Net(), TINY, arch="resnet18")
    result = case_row(model, "c0", str(folder / "c0.nii.gz"), (5, 9), 1, device="cpu")
    assert result["failure"] and not result["l3_found"]
    assert result["predicted_index"] == 25 and result["error_slices"] == 25 - 7 and result["error_mm"] == pytest.approx(18 * 5.0)
    assert (result["tp"], result["fp"], result["fn"]) == (0, 0, 5)


def test_evaluating_a_model_writes_a_report_whose_numbers_recompute(folder, tmp_path):
    model = L3Model(BigSquareNet(), TINY, arch="resnet18", source="oracle")
    report = evaluate_model(model, discover_cases(folder).cases, device="cpu")
    rows = report["cases"]
    assert [r["case"] for r in rows] == ["c0", "c1", "c2", "c3"]
    assert all(r["l3_found"] and r["error_slices"] <= 0.5 for r in rows)  # the truth is a middle, the answer a slice
    assert report["summary"]["slice_f1"] == 1.0 and report["summary"]["within_1"] == 1.0
    assert report["in_sample"] is None and "does not list the cases it was trained on" in report["warnings"][0]
    assert all(r["seen_by_model"] is None for r in rows)
    json_path, png_path = write_report(report, tmp_path)
    stored = json.loads(json_path.read_text())
    check_summary(stored["summary"], stored["cases"])
    assert stored["per_fold"] == [{"fold": None, "cases": 4, "failures": 0, "mean_error_slices": stored["summary"]["error_slices"]["mean"],
                                   "within_2": 1.0, "slice_f1": 1.0}]
    with Image.open(png_path) as picture:
        assert picture.size == (1100, 560)
        assert len(np.unique(np.asarray(picture.convert("RGB")).reshape(-1, 3), axis=0)) > 3  # something was drawn


def test_cross_validation_predicts_every_case_once_by_a_model_that_did_not_see_it(folder, tmp_path):
    cases = prepare_cases(discover_cases(folder).cases, TINY, tmp_path / "cache")
    budget = TrainingBudget(epochs=1, arch="resnet18", preprocessing=TINY, device="cpu", precision="fp32", seed=2)
    report = cross_validate(cases, DesignParameters(learning_rate=1e-2), budget, 2)
    rows = report["cases"]
    assert report["in_sample"] is False
    assert sorted(r["case"] for r in rows) == ["c0", "c1", "c2", "c3"]
    assert sorted({r["fold"] for r in rows}) == [1, 2]
    assert [f["cases"] for f in report["per_fold"]] == [2, 2]
    check_summary(report["summary"], rows)
    assert report["design_parameters"]["learning_rate"] == 1e-2 and report["folds"] == 2


def test_in_sample_is_judged_from_the_case_names_the_provenance_lists(folder, tmp_path):
    sources = discover_cases(folder).cases  # c0 .. c3
    trained_here = {"data": {"folder": str(folder.resolve()), "training_cases": ["c0", "c1"], "validation_cases": ["c2"]}}
    in_sample, seen, warnings = in_sample_check(trained_here, sources)
    assert in_sample is True and seen == {"c0": "training", "c1": "training", "c2": "validation"}
    assert warnings[0].startswith("IN-SAMPLE: 3 of 4 evaluated case(s) were used to make this model (2 to train it, 1 to choose it among")
    in_sample, seen, warnings = in_sample_check({"data": {"training_cases": ["z"], "validation_cases": ["c1"]}}, sources)
    assert in_sample is True and seen == {"c1": "validation"} and "(1 to choose it among the optimisation trials;" in warnings[0]
    assert in_sample_check({"data": {"training_cases": ["c3"]}}, sources)[:2] == (True, {"c3": "training"})  # no folder recorded
    elsewhere = {"data": {"folder": str(tmp_path / "other"), "training_cases": ["c0"]}}
    in_sample, seen, warnings = in_sample_check(elsewhere, sources)
    assert in_sample is None and seen == {"c0": "training"} and "if they are the same scans" in warnings[0]
    assert in_sample_check({"data": {"folder": str(folder), "training_cases": ["x", "y"]}}, sources) == (False, {}, [])
    in_sample, seen, warnings = in_sample_check({"data": {"cases": 4}}, sources)
    assert in_sample is None and seen == {} and "does not list the cases it was trained on" in warnings[0]


def test_evaluate_command(folder, tmp_path):
    cases = prepare_cases(discover_cases(folder).cases, TINY, tmp_path / "cache")
    result = train_model(cases[:2], DesignParameters(learning_rate=1e-2), TrainingBudget(epochs=1, arch="resnet18", preprocessing=TINY, device="cpu"))
    result.model.provenance = {"data": {"folder": str(folder.resolve()), "training_cases": [c.name for c in cases[:2]]}}
    model_path = result.model.save(tmp_path / "m.pt")
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["evaluate", str(folder), "--model", str(model_path), "--output-dir", str(tmp_path / "eval"), "--progress", "json", "--device", "cpu"])
    assert code == 0, err.getvalue()
    lines = [json.loads(line[len(PREFIX) + 1 :]) for line in out.getvalue().splitlines() if line.startswith(PREFIX)]
    assert lines[-1]["stage"] == "done" and lines[-1]["model"] == str(model_path)
    report = json.loads((tmp_path / "eval" / "cv_report.json").read_text())
    assert lines[-1]["report"] == str(tmp_path / "eval" / "cv_report.json")
    assert len(report["cases"]) == 4 and (tmp_path / "eval" / "cv_report.png").is_file()
    check_summary(report["summary"], report["cases"])
    # The model was trained on c0 and c1: the figures are in-sample, and every output says so.
    assert report["in_sample"] is True and lines[-1]["in_sample"] is True
    assert [r["seen_by_model"] for r in report["cases"]] == ["training", "training", None, None]
    assert report["warnings"][0].startswith("IN-SAMPLE") and lines[-1]["warnings"] == report["warnings"]
    assert "WARNING: IN-SAMPLE: 2 of 4 evaluated case(s) were used to make this model (2 to train it;" in err.getvalue() and "IN-SAMPLE error" in err.getvalue()
    # Cross-validation needs the design parameters in the model's provenance: this one has none.
    with redirect_stdout(io.StringIO()), redirect_stderr(err):
        assert main(["evaluate", str(folder), "--model", str(model_path), "--folds", "2", "--output-dir", str(tmp_path / "cv")]) == 2
    assert "does not record its design parameters" in err.getvalue()


def fake_training_result(network: torch.nn.Module) -> TrainingResult:
    return TrainingResult(L3Model(network, TINY, arch="resnet18"), [EpochStats(10, 2, 0, 0.5, 0.01)], 0.01, {})


@pytest.mark.parametrize("network, validated", [(NeverL3Net, False), (BigSquareNet, True)])
def test_train_says_whether_cross_validation_found_l3_in_every_case(folder, tmp_path, monkeypatch, network, validated):
    """``train`` with every training run replaced by a fixed network: one that never answers
    (each fold finds nothing) and one that is always right."""

    def train_model(cases, params, budget, *, on_epoch=None):
        if on_epoch:
            on_epoch(1, 0.5)
        return fake_training_result(network())

    for module in (optimize_module, evaluate_module, workflow_module):
        monkeypatch.setattr(module, "train_model", train_model)
    monkeypatch.setattr(optimize_module, "validation_counts", lambda model, cases, **kwargs: SliceCounts(1, 0, 0))
    monkeypatch.setattr(L3Model, "save", lambda self, path, **kwargs: path)  # the stand-in networks are not ResNets
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["train", str(folder), "--output-dir", str(tmp_path), "--small", "--input-size", "32", "--trials", "1",
                     "--folds", "2", "--progress", "json", "--cache-dir", str(tmp_path / "cache")])
    assert code == 0, err.getvalue()
    done = [json.loads(line[len(PREFIX) + 1 :]) for line in out.getvalue().splitlines() if line.startswith(PREFIX)][-1]
    report = json.loads((tmp_path / "cv_report.json").read_text())
    assert done["stage"] == "done" and done["validated"] is validated and done["warnings"] == report["warnings"]
    text = err.getvalue()
    # 4 patients are too few for the full optimisation: said first, in the report and on stderr.
    too_few = "only 4 patient(s): the full optimisation needs at least 20 for figures worth trusting"
    assert report["warnings"][0].startswith(too_few) and all(f"WARNING: {w}" in text for w in report["warnings"])
    if validated:
        assert report["summary"]["failures"] == 0 and len(report["warnings"]) == 1
        assert f"final model: {tmp_path / 'final_model.pt'}" in text and "NOT VALIDATED" not in text
    else:
        assert report["summary"]["failures"] == 4 and [f["failures"] for f in report["per_fold"]] == [2, 2]
        assert report["warnings"][1:3] == [
            "fold 1: no L3 found in any of its 2 labelled case(s); that fold's model learned nothing usable",
            "fold 2: no L3 found in any of its 2 labelled case(s); that fold's model learned nothing usable",
        ]
        assert "WARNING: fold 1: no L3 found in any" in text and "NO L3 FOUND in 2 of 2" in text
        assert "final model, NOT VALIDATED" in text and f"final model: {tmp_path / 'final_model.pt'}" not in text
        assert "NOT VALIDATED" in done["message"]


@pytest.mark.slow
def test_a_briefly_trained_model_finds_l3_on_held_out_phantoms(tmp_path):
    """Accuracy, end to end: train on 16 phantoms (5 mm slices, so L3 spans several slices),
    then ``find_l3`` on 4 phantoms it never saw. About a minute on one CPU core.

    Settings: the small configuration's network and input (ResNet18, 64 px, half the non-L3
    slices per epoch), 6 epochs, and the imbalance-aware parameters (class weight 0.75,
    oversampling 0.2). What this budget reaches (trials with 3 seeds, bfloat16 and float32, 6
    held-out phantoms each): every answer found, 15 of 18 within 2 slices of the truth, the rest
    2.5-3 slices off, mean 1.3 slices (with this seed, on these 4: 0.5, 3, 3, 0). So the test
    asks for every L3 found, one within 2 slices at least, and a mean error of at most 3 slices
    (an untrained or broken model finds nothing or misses by ~10 slices or more).
    """
    from l3locator.phantoms import generate_phantom, write_phantom_case
    from l3locator.pipeline import find_l3

    train_folder = tmp_path / "train"
    train_folder.mkdir()
    for n in range(16):
        write_phantom_case(generate_phantom(1000 + n, shape_ij=(96, 96), slice_thickness_mm=5.0, extent="abdomen", variant="normal"),
                           train_folder, f"ph{n:02d}")
    config = PreprocessingConfig(input_size=64)
    cases = prepare_cases(discover_cases(train_folder).cases, config, tmp_path / "cache")
    budget = TrainingBudget(epochs=6, arch="resnet18", preprocessing=config, negatives_per_epoch=0.5, device="cpu", seed=0)
    params = DesignParameters(learning_rate=3e-3, minibatch_size=16, l2_regularisation=1e-4, gradient_threshold=6,
                              oversampling_rate=0.2, class_weight=0.75)
    model = train_model(cases, params, budget).model

    errors = []
    for seed in (1100, 1101, 1102, 1103):
        phantom = generate_phantom(seed, shape_ij=(96, 96), slice_thickness_mm=5.0, extent="abdomen", variant="normal")
        result = find_l3(phantom.volume, model, device="cpu")
        assert result.l3_found, f"phantom {seed}: no L3 found ({result.flags})"
        errors.append(abs(result.l3_slice_index - sum(phantom.l3_range) / 2))
    assert min(errors) <= 2 and float(np.mean(errors)) <= 3, errors
