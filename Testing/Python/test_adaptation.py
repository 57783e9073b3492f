"""Adapting a model (``train --init-model``): the run starts from the parent's weights and keeps its
preprocessing and locate rule, conflicting options are refused, ``--quick`` runs no optimisation,
the report compares parent and adapted model on the same held-out folds, and the guard rails
(too few cases, an adapted model no better than its parent) say so."""

import copy
import hashlib
import json

import pytest
import torch

from conftest import synthetic_volume
from l3locator.labels import L3Label, write_label
from l3locator.locate import LocateRule
from l3locator.modelfile import L3Model, load_model
from l3locator.models import DEFAULT_MODEL_PATH
from l3locator.phantoms.writing import write_nifti
from l3locator.preprocessing import PreprocessingConfig
from l3locator.training import evaluate as evaluate_module
from l3locator.training import train as train_module
from l3locator.training import workflow as workflow_module
from l3locator.training.adapt import (
    FINE_TUNING_BUDGET, compare_with_parent, comparison_warnings, fine_tuning_budget, quick_parameters, too_few_cases_warning,
)
from l3locator.training.cache import prepare_cases
from l3locator.training.cli import TRAIN_DESCRIPTION
from l3locator.training.dataset import discover_cases
from l3locator.training.design import HAND_PICKED, DesignParameters
from l3locator.training.evaluate import summarise
from l3locator.training.parent import ParentModel, load_parent, resolve_init_model
from l3locator.training.train import EpochStats, TrainingBudget, TrainingResult, train_model
from test_evaluate import BigSquareNet, NeverL3Net
from test_optimize import run_cli

pytestmark = pytest.mark.usefixtures("one_thread")

#: The parent's preprocessing: not the defaults anywhere (input size, channels, offset), so a
#: run that did not take it from the parent would show.
PARENT_CONFIG = PreprocessingConfig(input_size=32, channel_mode="neighbors", neighbor_offset_mm=7.0)
PARENT_RULE = LocateRule(smoothing_mm=3.0, threshold=0.7)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Five labelled cases of five patients (26 slices of 40 x 40 voxels)."""
    root = tmp_path_factory.mktemp("cases")
    for n in range(5):
        l3 = (5 + 2 * n, 9 + 2 * n)
        write_nifti(synthetic_volume(26, l3, seed=n), root / f"c{n}.nii.gz")
        write_label(L3Label(case=f"c{n}", image=f"c{n}.nii.gz", l3_slice_index=l3[0] + 2, l3_slice_range=l3, source="manual", num_slices=26),
                    root / f"c{n}.l3.json")
    return root


@pytest.fixture(scope="module")
def prepared(folder, tmp_path_factory):
    return prepare_cases(discover_cases(folder).cases, PARENT_CONFIG, tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="module")
def parent_file(prepared, tmp_path_factory):
    """A tiny ResNet18 parent trained briefly, with its own preprocessing, locate rule and design parameters."""
    params = DesignParameters(learning_rate=3e-3, minibatch_size=16, oversampling_rate=0.1, class_weight=0.6)
    budget = TrainingBudget(epochs=1, arch="resnet18", preprocessing=PARENT_CONFIG, device="cpu", precision="fp32", seed=1)
    model = train_model(prepared[:3], params, budget).model
    model.locate_rule = PARENT_RULE
    model.provenance = {"design_parameters": params.to_dict(), "budget": {"augmentation": "all-slices"}}
    return model.save(tmp_path_factory.mktemp("parent") / "site_parent.pt")


def tiny_adaptation_budget(parent_file, **overrides) -> TrainingBudget:
    values = {"epochs": 1, "device": "cpu", "precision": "fp32", "max_slices_per_epoch": 60, "bn_statistics_slices": 40}
    values.update(overrides)
    return fine_tuning_budget(load_parent(parent_file), **values)


# --- the parent: weights, preprocessing, locate rule ------------------------------------------------------

def first_batch(monkeypatch, cases, params, budget):
    """The first minibatch a training run feeds its network (after augmentation) and the logits it got."""
    seen = {}
    real_augment, real_loss = train_module.augment_samples, train_module.weighted_loss

    def augment(*args, **kwargs):
        inputs = real_augment(*args, **kwargs)
        seen.setdefault("inputs", inputs.detach().clone())
        return inputs

    def loss(logits, labels, weights):
        seen.setdefault("logits", logits.detach().float().clone())
        return real_loss(logits, labels, weights)

    monkeypatch.setattr(train_module, "augment_samples", augment)
    monkeypatch.setattr(train_module, "weighted_loss", loss)
    result = train_model(cases, params, budget)
    monkeypatch.undo()
    return seen["inputs"], seen["logits"], result


def test_a_run_from_a_model_starts_from_its_weights_and_keeps_its_preprocessing_and_rule(prepared, parent_file, monkeypatch):
    parent = load_model(parent_file)
    budget = tiny_adaptation_budget(parent_file)
    assert (budget.arch, budget.preprocessing, budget.augmentation) == ("resnet18", PARENT_CONFIG, "all-slices")  # the parent's
    inputs, logits, result = first_batch(monkeypatch, prepared[3:], quick_parameters(load_parent(parent_file)), budget)
    reference = copy.deepcopy(parent.network).train()  # batch statistics, as in training
    with torch.no_grad():
        expected = reference(inputs.float())
    assert torch.allclose(logits, expected, atol=1e-4), (logits - expected).abs().max()

    # From random weights the first logits are another network's.
    scratch = TrainingBudget(epochs=1, arch="resnet18", preprocessing=PARENT_CONFIG, device="cpu", precision="fp32",
                             max_slices_per_epoch=60, bn_statistics_slices=40, augmentation="all-slices")
    scratch_inputs, scratch_logits, _ = first_batch(monkeypatch, prepared[3:], quick_parameters(load_parent(parent_file)), scratch)
    with torch.no_grad():
        assert not torch.allclose(scratch_logits, copy.deepcopy(parent.network).train()(scratch_inputs.float()), atol=1e-2)

    model = result.model
    assert (model.arch, model.preprocessing, model.locate_rule) == ("resnet18", PARENT_CONFIG, PARENT_RULE)
    digest = hashlib.sha256(parent_file.read_bytes()).hexdigest()
    assert result.settings["initial_weights"] == {"name": "site_parent.pt", "sha256": digest}
    assert result.settings["bn_statistics_slices"] == 40  # statistics re-estimated on the new cases


def test_frozen_stages_keep_the_parents_weights(prepared, parent_file):
    parent = load_model(parent_file).network.state_dict()
    params = DesignParameters(learning_rate=1e-2, minibatch_size=16)
    trained = train_model(prepared[3:], params, tiny_adaptation_budget(parent_file, freeze_layers=2))
    state = trained.model.network.state_dict()
    frozen = [k for k in state if k.startswith(("conv1.", "bn1.weight", "bn1.bias", "layer1.")) and "running" not in k and "num_batches" not in k]
    assert frozen and all(torch.equal(state[k], parent[k]) for k in frozen)
    assert not torch.equal(state["layer4.1.conv2.weight"], parent["layer4.1.conv2.weight"]) and not torch.equal(state["fc.weight"], parent["fc.weight"])
    assert not torch.equal(state["bn1.running_mean"], parent["bn1.running_mean"])  # statistics re-estimated, frozen or not
    assert trained.settings["frozen_parameters"] == len([k for k, _ in trained.model.network.named_parameters() if k.startswith(("conv1.", "bn1.", "layer1."))])
    assert all(p.requires_grad for p in trained.model.network.parameters())
    with pytest.raises(ValueError, match="needs a model to start from"):
        TrainingBudget(freeze_layers=1)


def test_a_parent_that_does_not_fit_the_budget_is_refused(prepared, parent_file):
    budget = TrainingBudget(epochs=1, arch="resnet18", preprocessing=PreprocessingConfig(input_size=32), device="cpu",
                            init_model=str(parent_file))
    with pytest.raises(ValueError, match="keeps the model's network and preprocessing"):
        train_model(prepared[3:], HAND_PICKED, budget)


def test_quick_parameters_lower_the_parents_learning_rate(parent_file):
    parent = load_parent(parent_file)
    quick = quick_parameters(parent)
    assert quick.learning_rate == 1e-3 and quick.class_weight == 0.6 and quick.oversampling_rate == 0.1  # the rest is the parent's
    assert quick_parameters(None) == HAND_PICKED
    assert resolve_init_model("default") == DEFAULT_MODEL_PATH
    assert f"{FINE_TUNING_BUDGET['epochs']} epochs at a" in TRAIN_DESCRIPTION.replace("\n", " ")  # the help states the real default


# --- the command line ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (["--init-model", "PARENT", "--arch", "resnet50", "--input-size", "64"],
     "--init-model PARENT conflicts with --arch resnet50 (the model has resnet18), --input-size 64 (the model has 32)"),
    (["--init-model", "PARENT", "--channel-mode", "repeat"], "conflicts with --channel-mode repeat (the model has neighbors)"),
    (["--freeze-layers", "2"], "--freeze-layers needs --init-model"),
    (["--init-model", "PARENT", "--quick", "--trials", "3"], "--trials sets how many optimisation trials to run and --quick runs none"),
    (["--init-model", "missing.pt", "--quick"], "model file not found"),
])
def test_conflicting_options_are_refused_in_one_line(folder, parent_file, tmp_path, options, message):
    options = [str(parent_file) if o == "PARENT" else o for o in options]
    message = message.replace("PARENT", str(parent_file))
    code, _, err = run_cli(["train", str(folder), "--output-dir", str(tmp_path / "run"), *options])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "run" / "final_model.pt").exists()


def test_quick_adaptation_runs_no_optimisation_and_compares_with_the_parent(folder, parent_file, tmp_path, monkeypatch):
    monkeypatch.setattr(workflow_module, "optimise", lambda *a, **k: pytest.fail("--quick must not optimise"))
    output = tmp_path / "run"
    code, lines, err = run_cli(["train", str(folder), "--init-model", str(parent_file), "--quick", "--folds", "2", "--epochs", "1",
                                "--max-slices-per-epoch", "60", "--output-dir", str(output), "--progress", "json", "--device", "cpu",
                                "--precision", "fp32", "--cache-dir", str(tmp_path / "cache")])
    assert code == 0, err
    stages = [r["stage"] for r in lines]
    assert "trial_start" not in stages and stages.count("cv_fold") >= 2 and stages[-1] == "done"
    assert not (output / "trials.jsonl").exists() and not (output / "best_model.pt").exists()
    digest = hashlib.sha256(parent_file.read_bytes()).hexdigest()
    done = lines[-1]
    assert done["parent_model"] == {"name": "site_parent.pt", "sha256": digest}

    report = json.loads((output / "cv_report.json").read_text())
    parent_rows = report["parent"]["cases"]
    assert [(r["case"], r["fold"]) for r in parent_rows] == [(r["case"], r["fold"]) for r in report["cases"]]  # the same held-out folds
    parent = load_model(parent_file)
    for row in parent_rows:  # each is the parent's own answer, from the same evaluation code
        assert row == evaluate_module.case_row(parent, row["case"], row["image"], tuple(row["true_range"]), row["fold"], device="cpu")
    comparison = report["comparison"]
    assert comparison == done["comparison"] and comparison["parent_model"] == done["parent_model"]
    assert comparison["parent"]["mean_error_slices"] == summarise(parent_rows)["error_slices"]["mean"]
    assert comparison["adapted"]["mean_error_slices"] == report["summary"]["error_slices"]["mean"]
    assert comparison["cases_improved"] + comparison["cases_worse"] + comparison["cases_unchanged"] == 5
    assert done["recommended"] is comparison["recommended"] is (comparison["verdict"] == "better")
    assert f"adapted model vs its parent, on the same 5 held-out case(s): parent site_parent.pt" in err

    final = load_model(output / "final_model.pt")
    assert (final.preprocessing, final.locate_rule) == (PARENT_CONFIG, PARENT_RULE)
    provenance = final.provenance
    assert provenance["parent_model"] == done["parent_model"] and provenance["mode"] == "quick"
    assert provenance["metrics"]["comparison_with_parent"] == comparison and provenance["metrics"]["recommended"] is done["recommended"]
    assert provenance["budget"]["init_model"] == str(parent_file) and provenance["design_parameters"]["learning_rate"] == 1e-3
    card = (output / "final_model.md").read_text()
    assert done["model_card"] == str(output / "final_model.md")
    assert f"Started from: **site_parent.pt** (SHA-256 `{digest}`)" in card and "Against its parent, on the same 5 held-out case(s)" in card

    # Cross-validating the adapted model later re-adapts from its parent and compares again.
    code, lines, err = run_cli(["evaluate", str(folder), "--model", str(output / "final_model.pt"), "--folds", "2", "--device", "cpu",
                                "--output-dir", str(tmp_path / "cv"), "--cache-dir", str(tmp_path / "cache"), "--progress", "json"])
    assert code == 0, err
    again = json.loads((tmp_path / "cv" / "cv_report.json").read_text())
    assert again["parent"]["model"]["sha256"] == digest and again["comparison"]["parent"] == comparison["parent"]
    assert "re-adapted networks vs their parent, on the same 5 held-out case(s): parent site_parent.pt" in err


def test_an_adapted_model_worse_than_its_parent_is_not_recommended(folder, tmp_path, monkeypatch):
    """A perfect parent and adapted networks that never find L3, on 4 patients (too few for --quick)."""
    from l3locator.training import parent as parent_module

    config = PreprocessingConfig(input_size=32)
    stand_in = ParentModel(tmp_path / "perfect.pt", "ab" * 32, L3Model(BigSquareNet(), config, arch="resnet18"))
    monkeypatch.setattr(parent_module, "load_parent", lambda path: stand_in)
    monkeypatch.setattr(train_module, "load_parent", lambda path: stand_in)

    def train_model(cases, params, budget, *, on_epoch=None):
        return TrainingResult(L3Model(NeverL3Net(), config, arch="resnet18"), [EpochStats(10, 2, 0, 0.5, 0.01)], 0.01,
                              {"initial_weights": {"name": "perfect.pt", "sha256": "ab" * 32}})

    for module in (evaluate_module, workflow_module):
        monkeypatch.setattr(module, "train_model", train_model)
    monkeypatch.setattr(L3Model, "save", lambda self, path, **kwargs: path)  # the stand-in networks are not ResNets
    four = tmp_path / "four"
    four.mkdir()
    for n in range(4):
        for suffix in (".nii.gz", ".l3.json"):
            (four / f"c{n}{suffix}").symlink_to(folder / f"c{n}{suffix}")
    code, lines, err = run_cli(["train", str(four), "--init-model", "anything.pt", "--quick", "--folds", "2", "--output-dir", str(tmp_path / "run"),
                                "--progress", "json", "--cache-dir", str(tmp_path / "cache")])
    assert code == 0, err
    done = lines[-1]
    comparison = done["comparison"]
    assert comparison["verdict"] == "worse" and comparison["parent"]["failures"] == 0 and comparison["adapted"]["failures"] == 4
    assert done["recommended"] is False and "NOT RECOMMENDED, keep using perfect.pt" in done["message"]
    assert done["warnings"][0].startswith("only 4 patient(s): quick adaptation needs at least 5")
    assert any(w.startswith("the adapted model is worse than its parent perfect.pt on the held-out folds") for w in done["warnings"])
    assert "the adapted model is NOT RECOMMENDED: keep using perfect.pt" in err
    card = (tmp_path / "run" / "final_model.md").read_text()
    assert "**Not recommended**: keep using perfect.pt" in card and "worse than its parent" in card


# --- the comparison and the warnings, on crafted rows ------------------------------------------------------------

def rows(errors, fold=1, failures=()):
    """Report rows with the given errors (a case in ``failures`` found no L3)."""
    return [{"case": f"c{i}", "fold": fold, "true_range": [10, 12], "true_index": 11.0, "predicted_index": 11 + e, "l3_found": i not in failures,
             "failure": i in failures, "error_slices": abs(e), "error_mm": abs(e) * 2.5, "tp": 1, "fp": 0, "fn": 0} for i, e in enumerate(errors)]


def crafted_report(adapted, parent, failures=()):
    from l3locator.training.evaluate import per_fold_table

    adapted_rows, parent_rows = rows(adapted, failures=failures), rows(parent)
    return {"summary": summarise(adapted_rows), "per_fold": per_fold_table(adapted_rows), "cases": adapted_rows,
            "parent": {"model": {"name": "default.pt", "sha256": "0" * 64}, "summary": summarise(parent_rows),
                       "per_fold": per_fold_table(parent_rows), "cases": parent_rows}}


@pytest.mark.parametrize("adapted, parent, failures, verdict", [
    ([0, 1, 0], [3, 4, 2], (), "better"),
    ([1, 1, 2], [1, 2, 1], (), "no_gain"),
    ([2, 4, 3], [1, 1, 1], (), "worse"),
    ([0, 0, 1], [1, 1, 1], (2,), "worse"),  # a lower mean error does not make up for a case without an answer
])
def test_the_verdict_follows_the_errors_on_the_same_cases(adapted, parent, failures, verdict):
    comparison = compare_with_parent(crafted_report(adapted, parent, failures))
    assert comparison["verdict"] == verdict and comparison["recommended"] is (verdict == "better")
    assert comparison["gain_slices"] == pytest.approx(sum(parent) / 3 - sum(adapted) / 3)
    assert comparison["per_fold"] == [{"fold": 1, "parent_mean_error_slices": sum(parent) / 3, "adapted_mean_error_slices": sum(adapted) / 3}]
    warnings = comparison_warnings(comparison)
    assert (warnings == []) is (verdict == "better")
    if verdict == "worse":
        assert warnings[0].startswith("the adapted model is worse than its parent default.pt") and "keep using default.pt" in warnings[0]


def test_too_few_cases_for_the_mode_are_warned_about():
    assert too_few_cases_warning(4, quick=True).startswith("only 4 patient(s): quick adaptation needs at least 5")
    assert too_few_cases_warning(5, quick=True) is None
    assert too_few_cases_warning(19, quick=False).startswith("only 19 patient(s): the full optimisation needs at least 20")
    assert too_few_cases_warning(20, quick=False) is None
