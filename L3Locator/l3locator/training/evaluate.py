"""Accuracy of L3 localisation per case: k-fold cross-validation by case, or one model on all cases.

Each case is scored exactly as ``l3locator find --exhaustive`` does
(:func:`~l3locator.pipeline.find_l3` with ``exhaustive=True``: every slice in float32 from the
original HU, the model's locate rule and the anatomical check). Definitions:

* **truth**: the middle of the labelled L3 range, ``(first + last) / 2`` (may end in .5).
* **predicted**: the locate rule's L3 slice.
* **failure**: the rule finds no L3 in a case that has one. Its predicted slice is then taken
  to be the scan's end farther from the truth (slice 0 or ``num_slices - 1``), i.e. the worst
  possible answer, and it counts in the error statistics below (it is not dropped); ``failures``
  counts them.
* **error**: ``|predicted - truth|`` in slices, and times the slice thickness in mm;
  ``signed_error_slices`` = predicted - truth (positive = larger index).
* **mean ± SD** (sample SD, ``ddof = 1``; null for one case), **median**, **max** of the error;
  **within_1** / **within_2**: share of cases with error ≤ 1 / ≤ 2 slices.
* **slice F1**: per-slice classification of the L3 class (probability ≥ 0.5) pooled over all
  slices of all evaluated cases, with precision and recall.
* **regression**: least-squares line ``predicted = slope × true + intercept`` over the cases
  where an L3 was found (failures have no predicted slice of their own, so they are left out;
  ``regression.cases`` counts the cases used); ``r2`` is the squared Pearson correlation of
  predicted and true (the R² of that line); null with fewer than 2 such cases or no spread in
  the truth.
* Cases whose label has no L3 (a vertebra map without L3) are not in the error statistics:
  ``cases_without_l3`` counts them and ``false_positive_cases`` those where L3 was "found".
* **warnings**: sentences for what makes the figures untrustworthy: failures (and folds where
  every labelled case failed), false positives, and for a model scored on given cases
  (:func:`evaluate_model`) whether those cases were used to make it (``in_sample``, from the
  case names in the model's provenance: true, false, or null when the provenance cannot tell).
  Every report has ``warnings`` (a list, empty when there is nothing to say) and ``in_sample``.

In cross-validation (:func:`cross_validate`), the cases are split into ``folds`` folds by
patient (:func:`~.splits.kfold_cases`); for each fold a network is trained from scratch with the
given design parameters on the other folds (seed ``budget.seed + 1000 + fold``) and scores the
held-out fold. Every case is thus predicted once, by a model that never saw it
(``in_sample: false``). ``per_fold`` has each fold's case count, failures, mean error, share
within 2 slices and slice F1.

When the networks start from a model file (``budget.init_model``, an adaptation run) and that
*parent* is passed as ``parent``, the parent scores each fold's held-out cases too, with the same
:func:`case_row` and its own locate rule. The report then has a ``parent`` section (its
``model`` identity, ``summary``, ``per_fold`` and ``cases``, the same keys as the report's own)
and ``comparison`` (:func:`~.adapt.compare_with_parent`: both errors on the same cases, the
verdict and whether the adapted model is recommended); a verdict other than ``"better"`` adds
a warning (:func:`~.adapt.comparison_warnings`).

The report is written as strict JSON (non-finite numbers as null) and the picture
(:mod:`.report_plot`) beside it, both atomically.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import write_atomically
from ..locate import LocateRule
from ..modelfile import L3Model
from ..pipeline import find_l3
from ..reading import load_ct
from ..volume import CTVolume
from .adapt import compare_with_parent, comparison_warnings
from .cache import PreparedCase
from .dataset import CaseSource, read_truth, slice_targets, truth_index
from .design import DesignParameters
from .metrics import SliceCounts, objective_from_f1, slice_counts
from .parent import ParentModel
from .progress import ProgressReporter
from .provenance import now_iso, training_cases
from .report_plot import render_report
from .splits import kfold_cases
from .strict_json import write_json
from .train import TrainingBudget, train_model

REPORT_FORMAT = "l3locator-cv-report"
REPORT_JSON = "cv_report.json"
REPORT_PNG = "cv_report.png"
CV_SEED_OFFSET = 1000


def case_row(
    model: L3Model,
    name: str,
    image: str,
    l3_range: tuple[int, int] | None,
    fold: int | None,
    *,
    volume: CTVolume | None = None,
    device: str | None = None,
    rule: LocateRule | None = None,
) -> dict[str, Any]:
    """Score one case like ``find --exhaustive`` and compare with its truth (one row of the report).

    ``volume``: the case's CT when already read (else ``image`` is read). ``rule`` None: the
    model's own locate rule."""
    found = find_l3(volume if volume is not None else image, model, exhaustive=True, rule=rule, device=device)
    n = found.num_slices
    probabilities = np.asarray(found.slice_probabilities)
    counts = slice_counts(slice_targets(n, l3_range), probabilities)
    row: dict[str, Any] = {
        "case": name, "fold": fold, "image": str(image), "num_slices": n,
        "slice_thickness_mm": round(found.slice_thickness_mm, 4),
        "true_range": list(l3_range) if l3_range else None,
        "true_index": truth_index(l3_range) if l3_range else None,
        "l3_found": found.l3_found, "predicted_index": found.l3_slice_index,
        "predicted_range": list(found.l3_slice_range) if found.l3_slice_range else None,
        "confidence": round(found.confidence, 4), "flags": found.flags,
        "failure": False, "error_slices": None, "signed_error_slices": None, "error_mm": None,
        "tp": counts.tp, "fp": counts.fp, "fn": counts.fn,
    }
    if l3_range:
        truth = row["true_index"]
        if not found.l3_found:
            row["failure"] = True
            row["predicted_index"] = 0 if truth > (n - 1) / 2 else n - 1
        signed = row["predicted_index"] - truth
        row.update(signed_error_slices=signed, error_slices=abs(signed), error_mm=round(abs(signed) * found.slice_thickness_mm, 3))
    return row


def _stats(values: np.ndarray) -> dict[str, float | None]:
    if len(values) == 0:
        return {"mean": None, "sd": None, "median": None, "max": None}
    return {
        "mean": float(np.mean(values)),
        "sd": float(np.std(values, ddof=1)) if len(values) > 1 else None,
        "median": float(np.median(values)),
        "max": float(np.max(values)),
    }


def _regression(true: np.ndarray, predicted: np.ndarray) -> dict[str, float | int | None]:
    if len(true) < 2 or np.ptp(true) == 0:
        return {"slope": None, "intercept": None, "r2": None, "cases": len(true)}
    slope, intercept = np.polyfit(true, predicted, 1)
    r2 = float(np.corrcoef(true, predicted)[0, 1] ** 2) if np.ptp(predicted) > 0 else 0.0
    return {"slope": float(slope), "intercept": float(intercept), "r2": r2, "cases": len(true)}


def summarise(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The report's numbers from its per-case rows (definitions in the module docstring)."""
    with_truth = [r for r in rows if r["true_range"] is not None]
    answered = [r for r in with_truth if not r["failure"]]
    errors = np.array([r["error_slices"] for r in with_truth], dtype=np.float64)
    errors_mm = np.array([r["error_mm"] for r in with_truth], dtype=np.float64)
    counts = SliceCounts(sum(r["tp"] for r in rows), sum(r["fp"] for r in rows), sum(r["fn"] for r in rows))
    return {
        "cases": len(with_truth),
        "failures": sum(1 for r in with_truth if r["failure"]),
        "cases_without_l3": len(rows) - len(with_truth),
        "false_positive_cases": sum(1 for r in rows if r["true_range"] is None and r["l3_found"]),
        "error_slices": _stats(errors),
        "error_mm": _stats(errors_mm),
        "within_1": float(np.mean(errors <= 1)) if len(errors) else None,
        "within_2": float(np.mean(errors <= 2)) if len(errors) else None,
        "slice_f1": counts.f1,
        "slice_precision": counts.precision,
        "slice_recall": counts.recall,
        "regression": _regression(
            np.array([r["true_index"] for r in answered], dtype=np.float64),
            np.array([r["predicted_index"] for r in answered], dtype=np.float64),
        ),
    }


def per_fold_table(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per fold (``fold`` null when a single model scored everything)."""
    table = []
    for fold in sorted({r["fold"] for r in rows}, key=lambda f: -1 if f is None else f):
        fold_rows = [r for r in rows if r["fold"] == fold]
        summary = summarise(fold_rows)
        table.append({
            "fold": fold, "cases": summary["cases"], "failures": summary["failures"],
            "mean_error_slices": summary["error_slices"]["mean"], "within_2": summary["within_2"],
            "slice_f1": summary["slice_f1"],
        })
    return table


def _names(rows: Sequence[dict[str, Any]], shown: int = 5) -> str:
    names = [r["case"] for r in rows]
    return ", ".join(names[:shown]) + (f" and {len(names) - shown} more" if len(names) > shown else "")


def failure_warnings(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Warnings about the answers: folds whose every labelled case failed, failures, false positives."""
    warnings = []
    for fold in sorted({r["fold"] for r in rows if r["fold"] is not None}):
        labelled = [r for r in rows if r["fold"] == fold and r["true_range"] is not None]
        if labelled and all(r["failure"] for r in labelled):
            warnings.append(f"fold {fold}: no L3 found in any of its {len(labelled)} labelled case(s); that fold's model learned nothing usable")
    failed = [r for r in rows if r["failure"]]
    if failed:
        labelled = sum(1 for r in rows if r["true_range"] is not None)
        warnings.append(
            f"no L3 found in {len(failed)} of {labelled} labelled case(s) ({_names(failed)}); their error counts as the scan's "
            "far end in the error statistics, and they are left out of the regression"
        )
    false_positives = [r for r in rows if r["true_range"] is None and r["l3_found"]]
    if false_positives:
        warnings.append(f"L3 found in {len(false_positives)} case(s) labelled without L3 ({_names(false_positives)})")
    return warnings


def build_report(rows: list[dict[str, Any]], *, in_sample: bool | None, warnings: Sequence[str] = (), **about: Any) -> dict[str, Any]:
    """The report dict: what was evaluated (``about``), ``in_sample``, ``warnings`` (the given
    ones, then :func:`failure_warnings`), the summary, the per-fold table, the rows."""
    return {
        "format": REPORT_FORMAT, "format_version": 1, "created": now_iso(), **about,
        "in_sample": in_sample, "warnings": [*warnings, *failure_warnings(rows)],
        "summary": summarise(rows), "per_fold": per_fold_table(rows), "cases": rows,
    }


def write_report(report: dict[str, Any], output_dir: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``cv_report.json`` (strict JSON) and ``cv_report.png`` into ``output_dir``, each
    atomically; returns both paths."""
    out = Path(output_dir)
    json_path = write_json(out / REPORT_JSON, report, indent=2)
    picture = render_report(report)
    png_path = write_atomically(out / REPORT_PNG, lambda tmp: picture.save(tmp, format="PNG"))
    return json_path, png_path


def in_sample_check(provenance: dict[str, Any], sources: Sequence[CaseSource]) -> tuple[bool | None, dict[str, str], list[str]]:
    """Were ``sources`` used to make the model? Judged by case name against the training (and
    validation) cases its provenance lists (:func:`~.provenance.training_cases`).

    Returns ``(in_sample, seen, warnings)``: ``in_sample`` is True when some evaluated case
    shares its name with a case the model was trained or chosen on (and the provenance names
    no other folder), False when none does, None when the provenance cannot tell (no case list,
    or the same names in another folder); ``seen`` maps such case names to ``"training"`` or
    ``"validation"``; ``warnings`` says what this means for the figures.
    """
    recorded = training_cases(provenance)
    if recorded is None:
        return None, {}, [
            "the model file does not list the cases it was trained on: these figures estimate accuracy on new scans "
            "only if none of these cases was used to train it"
        ]
    seen = {s.name: "training" for s in sources if s.name in recorded.trained}
    seen.update({s.name: "validation" for s in sources if s.name in recorded.validation and s.name not in seen})
    if not seen:
        return False, {}, []
    trained = sum(1 for role in seen.values() if role == "training")
    chosen = len(seen) - trained
    roles = ", ".join(part for part in (
        f"{trained} to train it" if trained else "", f"{chosen} to choose it among the optimisation trials" if chosen else "",
    ) if part)
    folders = {s.label.parent.resolve() for s in sources}
    if recorded.folder is not None and Path(recorded.folder).resolve() not in folders:
        return None, seen, [
            f"{len(seen)} of {len(sources)} evaluated case(s) have the names of cases this model was trained or chosen on "
            f"(in {recorded.folder}); if they are the same scans, these figures are in-sample, not an estimate of accuracy on new scans"
        ]
    return True, seen, [
        f"IN-SAMPLE: {len(seen)} of {len(sources)} evaluated case(s) were used to make this model ({roles}; matched by case name); "
        "these figures do not estimate accuracy on new scans "
        "(use --folds K to cross-validate, or a folder of cases the model never saw)"
    ]


def evaluate_model(
    model: L3Model,
    sources: Sequence[CaseSource],
    *,
    device: str | None = None,
    rule: LocateRule | None = None,
    on_case: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Score every case with ``model`` (no training) and build the report (``fold`` null).

    Each row's ``seen_by_model`` is ``"training"`` / ``"validation"`` when the model's
    provenance lists the case as used to make it, else null; see :func:`in_sample_check`."""
    in_sample, seen, warnings = in_sample_check(model.provenance, sources)
    rows = []
    for number, source in enumerate(sources, start=1):
        volume = load_ct(source.image)
        row = case_row(model, source.name, str(source.image), read_truth(source, volume), None, volume=volume, device=device, rule=rule)
        row["seen_by_model"] = seen.get(source.name)
        rows.append(row)
        if on_case is not None:
            on_case(number, len(sources), row)
    return build_report(rows, in_sample=in_sample, warnings=warnings, mode="model", model=model.source, model_provenance=model.provenance)


def _mean_error_text(summary: dict[str, Any]) -> str:
    mean_error = summary["error_slices"]["mean"]
    return "n/a" if mean_error is None else f"{mean_error:.2f}"


def cross_validate(
    cases: Sequence[PreparedCase],
    params: DesignParameters,
    budget: TrainingBudget,
    folds: int,
    *,
    rule: LocateRule | None = None,
    progress: ProgressReporter | None = None,
    parent: ParentModel | None = None,
) -> dict[str, Any]:
    """K-fold cross-validation by patient with ``params``; with ``parent``, also the parent's
    errors on the same held-out cases and the comparison (see the module docstring)."""
    progress = progress or ProgressReporter(quiet=True)
    groups = kfold_cases(cases, folds, budget.seed)
    rows: list[dict[str, Any]] = []
    parent_rows: list[dict[str, Any]] = []
    for fold, held_out in enumerate(groups, start=1):
        names = {c.name for c in held_out}
        training = [c for c in cases if c.name not in names]

        def on_epoch(epoch: int, loss: float, fold: int = fold) -> None:
            progress.epoch_finished()
            progress.emit("cv_fold", trial=fold, trials=folds, epoch=epoch, epochs=budget.epochs, loss=loss, message="cross-validation: training")

        result = train_model(training, params, budget.with_seed(budget.seed + CV_SEED_OFFSET + fold), on_epoch=on_epoch)
        fold_rows = []
        for case in held_out:
            volume = load_ct(case.image)
            fold_rows.append(case_row(result.model, case.name, case.image, case.l3_range, fold, volume=volume, device=budget.device, rule=rule))
            if parent is not None:
                parent_rows.append(case_row(parent.model, case.name, case.image, case.l3_range, fold, volume=volume, device=budget.device))
        rows += fold_rows
        fold_summary = summarise(fold_rows)
        failed = f", NO L3 FOUND in {fold_summary['failures']} of {fold_summary['cases']}" if fold_summary["failures"] else ""
        parent_text = ""
        if parent is not None:
            parent_text = f" (parent {parent.name}: {_mean_error_text(summarise(parent_rows[-len(held_out):]))})"
        progress.emit("cv_fold", trial=fold, trials=folds, objective=objective_from_f1(fold_summary["slice_f1"]),
                      message=f"fold {fold}/{folds} scored: {len(held_out)} case(s){failed}, mean error {_mean_error_text(fold_summary)} slices"
                              f"{parent_text}, slice F1 {fold_summary['slice_f1']:.3f}")
    report = build_report(rows, in_sample=False, mode="cross-validation", folds=folds, seed=budget.seed,
                          design_parameters=params.to_dict(), budget=budget.to_dict())
    if parent is not None:
        report["parent"] = {"model": parent.identity(), "summary": summarise(parent_rows), "per_fold": per_fold_table(parent_rows),
                            "cases": parent_rows}
        report["comparison"] = compare_with_parent(report)
        report["warnings"] += comparison_warnings(report["comparison"])
    return report
