"""Adapting a model to a site's own scans: fine-tuning defaults, guard rails, and the comparison of
the adapted model with its parent on the same held-out cases.

The path: a site corrects some of its scans (the L3Locator Slicer module exports each as a case),
then ``l3locator train DIR --init-model default --quick`` starts from the shipped model's
weights (:mod:`.parent`), fine-tunes them on those cases, cross-validates by patient, and scores
the parent on every fold's held-out cases with the same evaluation code
(:func:`~.evaluate.cross_validate` with ``parent``), so the report says whether the adapted
model is better than the one the site already has.

Fine-tuning defaults (a run with ``--init-model``; explicit options win):

* architecture and preprocessing (input size, channel mode, neighbour offset, HU window) are the
  parent's; an explicit option that differs is refused (:func:`conflicting_options`);
* :func:`fine_tuning_budget`: :data:`FINE_TUNING_BUDGET` (fewer epochs than training from
  scratch, batch-norm statistics re-estimated on up to 4,000 of the new slices) and the
  parent's augmentation scheme;
* ``--quick`` (no Bayesian optimisation) trains once with :func:`quick_parameters`: the parent's
  recorded design parameters with the learning rate lowered to
  :data:`FINE_TUNING_LEARNING_RATE` (the weights are already good: a large step would undo
  them). From random weights ``--quick`` uses :data:`~.design.HAND_PICKED`.

Guard rails: :func:`too_few_cases_warning` (fewer patients than :data:`MIN_PATIENTS` for the
mode); a fold that finds no L3 is warned about by the cross-validation report itself; and
:func:`compare_with_parent` gives the verdict ``"better"``, ``"no_gain"``, ``"worse"`` (or
``"unknown"`` without errors to compare). Only a ``"better"`` model is *recommended*: the run
still writes it, but says to keep the parent (:func:`comparison_warnings`).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from ..choices import AUGMENTATIONS
from ..modelfile import L3Model
from .design import HAND_PICKED, LEARNING_RATE_RANGE, DesignParameters
from .parent import ParentModel
from .train import TrainingBudget

#: Learning rate of ``--quick`` fine-tuning (the shipped model was trained at 5e-3).
FINE_TUNING_LEARNING_RATE = 1e-3
#: Budget defaults of a run that starts from a model (``TrainingBudget`` field names). Chosen on
#: development phantoms of ``bench/adaptation.py``'s site (seeds 3,200,000+, not its held-out
#: ones; shipped model 2.56 slices mean error): after 5 / 10 site cases, 6 epochs gave 1.06 /
#: 1.19 slices, 10 epochs 0.94 / 0.69; 8 keeps a 10-case run with 5 folds within minutes.
FINE_TUNING_BUDGET: dict[str, Any] = {
    "epochs": 8, "negatives_per_epoch": 0.25, "max_slices_per_epoch": 1500, "bn_statistics_slices": 4000,
}
#: Fewest patients for a trustworthy result: ``--quick`` (one fixed training, cross-validated)
#: and the full optimisation (a validation split that chooses among trials, then cross-validation).
MIN_PATIENTS = {"quick": 5, "full": 20}


def conflicting_options(parent: L3Model, *, arch: str | None, input_size: int | None, channel_mode: str | None) -> list[str]:
    """Explicit options that contradict the parent (None: not given), one phrase each."""
    given = {"--arch": (arch, parent.arch), "--input-size": (input_size, parent.preprocessing.input_size),
             "--channel-mode": (channel_mode, parent.preprocessing.channel_mode)}
    return [f"{option} {value} (the model has {own})" for option, (value, own) in given.items() if value is not None and value != own]


def fine_tuning_budget(parent: ParentModel, **overrides: Any) -> TrainingBudget:
    """The budget of a run that starts from ``parent``: its architecture and preprocessing,
    :data:`FINE_TUNING_BUDGET`, the augmentation the parent records (its scheme is part of
    what it learned: e.g. a model trained with every slice augmented must not be taught that
    transformed slices are L3), then ``overrides`` (other ``TrainingBudget`` fields)."""
    recorded = (parent.model.provenance.get("budget") or {}).get("augmentation")
    augmentation = {"augmentation": recorded} if recorded in AUGMENTATIONS else {}
    values = {**FINE_TUNING_BUDGET, **augmentation, **overrides}
    return TrainingBudget(arch=parent.model.arch, preprocessing=parent.model.preprocessing, init_model=str(parent.path), **values)


def quick_parameters(parent: ParentModel | None) -> DesignParameters:
    """Design parameters of a ``--quick`` run (see the module docstring)."""
    if parent is None:
        return HAND_PICKED
    try:
        recorded = DesignParameters.from_dict(parent.model.provenance["design_parameters"])
    except (KeyError, TypeError, ValueError):
        recorded = HAND_PICKED
    rate = min(recorded.learning_rate, FINE_TUNING_LEARNING_RATE)
    return replace(recorded, learning_rate=max(rate, LEARNING_RATE_RANGE[0]))


def too_few_cases_warning(patients: int, quick: bool) -> str | None:
    """A warning when ``patients`` is below :data:`MIN_PATIENTS` for the mode, else None."""
    mode = "quick" if quick else "full"
    needed = MIN_PATIENTS[mode]
    if patients >= needed:
        return None
    what = "quick adaptation" if quick else "the full optimisation"
    return (f"only {patients} patient(s): {what} needs at least {needed} for figures worth trusting "
            "(each fold scores very few cases; correct and export more scans)")


def _errors(summary: dict[str, Any]) -> dict[str, Any]:
    return {"mean_error_slices": summary["error_slices"]["mean"], "median_error_slices": summary["error_slices"]["median"],
            "within_2": summary["within_2"], "failures": summary["failures"], "false_positive_cases": summary["false_positive_cases"]}


def compare_with_parent(report: dict[str, Any]) -> dict[str, Any]:
    """Parent against adapted model on the same held-out cases, from a cross-validation report
    with a ``parent`` section (:func:`~.evaluate.cross_validate` with ``parent``).

    Returns ``parent_model`` (name, sha256), ``cases``, ``parent`` and ``adapted`` (mean and
    median error in slices, share within 2 slices, failures, false positives), ``gain_slices``
    (parent's mean error minus the adapted one's: positive = better), ``cases_improved`` /
    ``cases_worse`` / ``cases_unchanged`` (by error per case), ``per_fold`` (both mean errors
    per fold), ``verdict`` and ``recommended`` (verdict ``"better"``).

    Verdict: ``"worse"`` when the adapted model has a higher mean error, more failures or more
    false positives; ``"better"`` when its mean error is lower and neither of the others rose;
    ``"no_gain"`` otherwise; ``"unknown"`` when there is no labelled L3 to compare on.
    """
    parent = report["parent"]
    adapted_errors, parent_errors = _errors(report["summary"]), _errors(parent["summary"])
    by_case = {r["case"]: r["error_slices"] for r in parent["cases"]}
    pairs = [(by_case[r["case"]], r["error_slices"]) for r in report["cases"] if r["error_slices"] is not None]
    before, after = parent_errors["mean_error_slices"], adapted_errors["mean_error_slices"]
    if before is None or after is None:
        verdict = "unknown"
    elif (after > before or adapted_errors["failures"] > parent_errors["failures"]
          or adapted_errors["false_positive_cases"] > parent_errors["false_positive_cases"]):
        verdict = "worse"
    elif after < before:
        verdict = "better"
    else:
        verdict = "no_gain"
    parent_folds = {f["fold"]: f["mean_error_slices"] for f in parent["per_fold"]}
    return {
        "parent_model": {"name": parent["model"]["name"], "sha256": parent["model"]["sha256"]},
        "cases": report["summary"]["cases"],
        "parent": parent_errors,
        "adapted": adapted_errors,
        "gain_slices": None if verdict == "unknown" else before - after,
        "cases_improved": sum(1 for p, a in pairs if a < p),
        "cases_worse": sum(1 for p, a in pairs if a > p),
        "cases_unchanged": sum(1 for p, a in pairs if a == p),
        "per_fold": [{"fold": f["fold"], "parent_mean_error_slices": parent_folds.get(f["fold"]),
                      "adapted_mean_error_slices": f["mean_error_slices"]} for f in report["per_fold"]],
        "verdict": verdict,
        "recommended": verdict == "better",
    }


def _slices(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def comparison_text(comparison: dict[str, Any]) -> str:
    """One sentence: both mean errors on the same held-out cases, and the verdict."""
    def errors(model: dict[str, Any]) -> str:
        missed = f" ({model['failures']} without an answer)" if model["failures"] else ""
        return _slices(model["mean_error_slices"]) + missed

    name = comparison["parent_model"]["name"]
    text = (f"on the same {comparison['cases']} held-out case(s): parent {name} {errors(comparison['parent'])} slices mean error, "
            f"adapted {errors(comparison['adapted'])}")
    verdict = comparison["verdict"]
    if verdict == "better":
        return (f"{text}: better by {comparison['gain_slices']:.2f} slices "
                f"({comparison['cases_improved']} case(s) improved, {comparison['cases_worse']} worse)")
    if verdict == "worse":
        return f"{text}: WORSE than the parent"
    if verdict == "no_gain":
        return f"{text}: no gain over the parent"
    return f"{text}: no labelled L3 to compare on"


def comparison_warnings(comparison: dict[str, Any]) -> list[str]:
    """Warnings when the adapted model is not better than its parent (empty when it is)."""
    if comparison["recommended"]:
        return []
    name = comparison["parent_model"]["name"]
    if comparison["verdict"] == "worse":
        return [f"the adapted model is worse than its parent {name} on the held-out folds ({comparison_text(comparison)}); "
                f"it is not recommended: keep using {name}"]
    if comparison["verdict"] == "no_gain":
        return [f"the adapted model is no better than its parent {name} on the held-out folds ({comparison_text(comparison)}); "
                f"it is not recommended: keep using {name}"]
    return [f"the adapted model could not be compared with its parent {name} (no labelled L3 in the held-out cases); it is not recommended"]
