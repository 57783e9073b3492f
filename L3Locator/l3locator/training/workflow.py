"""The whole ``l3locator train`` job: data → optimisation → cross-validation → final model.

1. **Data**: the folder's cases are found (:func:`~.dataset.discover_cases`) and their slices
   preprocessed once into the cache (:mod:`.cache`; default ``<output>/slice_cache``). A folder
   with fewer patients than the mode needs (:func:`~.adapt.too_few_cases_warning`: 5 for
   ``quick``, 20 for the full optimisation) gets a warning, and the run goes on.
2. **Optimisation** (:func:`~.optimize.optimise`): ``trials`` trials, each trained on the
   training cases and scored on held-out validation cases; the best trial's model is
   ``best_model.pt``. A ``quick`` run skips this step and trains with fixed design parameters
   (:func:`~.adapt.quick_parameters`).
3. **Cross-validation** (when ``folds >= 2``, :func:`~.evaluate.cross_validate`): with the best
   trial's design parameters, ``folds`` networks are re-trained, each without one fold of
   patients, and every case is scored by the network that did not see it →
   ``cv_report.json`` and ``cv_report.png``. (The parameters were chosen on a validation split
   of the same cases, so this estimate is slightly optimistic, as in the paper's design.)
4. **Final model**: one more network with the best parameters, trained on *all* cases (seed
   ``seed + 2000``) → ``final_model.pt``, whose provenance carries the cross-validation summary
   as its expected accuracy, and its model card ``final_model.md`` (:mod:`.model_card`). This is
   the model to use; the ``done`` progress line names it.

Every network starts from ``budget.init_model`` when it is set (an *adaptation* run: the
parent's weights, preprocessing and locate rule, :mod:`.parent`). The cross-validation then also
scores the parent on every fold's held-out cases, and the final model is **recommended** only
when it beat its parent there (:func:`~.adapt.compare_with_parent`); without cross-validation it
cannot be compared and is not recommended.

The final model counts as **validated** only when cross-validation ran and found an L3 in
every labelled case. Otherwise the run still writes it, but says so: each warning (too few
cases, the cross-validation report's: a fold that found no L3 in any case, failures, false
positives, an adapted model no better than its parent) is in the ``done`` progress line's
``warnings`` (``l3locator train`` prints each as a ``WARNING:`` line), the ``done`` line carries
``validated``, ``parent_model``, ``comparison`` and ``recommended`` (null when trained from
random weights), its message says "NOT VALIDATED" or "NOT RECOMMENDED", and the model's
provenance records them (``metrics.validated``, ``metrics.cross_validation_warnings``,
``metrics.comparison_with_parent``, ``metrics.recommended``, ``parent_model``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..choices import CACHE_FOLDER
from ..errors import InputError
from .adapt import comparison_text, quick_parameters, too_few_cases_warning
from .cache import PreparedCase, prepare_cases
from .dataset import data_summary, discover_cases, training_blockers
from .evaluate import cross_validate, write_report
from .model_card import MODEL_CARD_FILE, write_model_card
from .optimize import BEST_MODEL_FILE, TRIALS_FILE, OptimisationResult, optimise, read_trials
from .parent import ParentModel
from .progress import ProgressReporter
from .provenance import make_provenance
from .train import TrainingBudget, starting_parent, train_model

FINAL_MODEL_FILE = "final_model.pt"
FINAL_SEED_OFFSET = 2000


@dataclass
class TrainingOutputs:
    """What :func:`run_training` wrote and concluded (see the module docstring).

    ``best_model``, ``trials_log`` and ``optimisation`` are None for a quick run; ``report_*``
    None without cross-validation; ``parent`` (name and SHA-256), ``comparison`` and
    ``recommended`` are None for a run from random weights (``comparison`` also without
    cross-validation).
    """

    final_model: Path
    model_card: Path
    best_model: Path | None
    trials_log: Path | None
    report_json: Path | None
    report_png: Path | None
    optimisation: OptimisationResult | None
    validated: bool
    warnings: list[str]
    parent: dict[str, str] | None
    comparison: dict[str, Any] | None
    recommended: bool | None


def prepare_data(data_dir: str | os.PathLike, budget: TrainingBudget, cache_dir: str | os.PathLike, progress: ProgressReporter) -> list[PreparedCase]:
    """Find and cache the cases of ``data_dir`` (step 1); unlabelled CTs are reported and skipped."""
    discovery = discover_cases(data_dir)
    if discovery.unlabelled:
        names = ", ".join(p.name for p in discovery.unlabelled[:5]) + (" ..." if len(discovery.unlabelled) > 5 else "")
        progress.note(f"skipping {len(discovery.unlabelled)} CT file(s) without a label: {names}")
    return prepare_cases(
        discovery.cases, budget.preprocessing, cache_dir,
        progress=lambda done, total, name: progress.note(f"preparing slices {done}/{total}: {name}"),
    )


def run_training(
    data_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    folds: int,
    budget: TrainingBudget,
    trials: int = 30,
    quick: bool = False,
    control: bool = False,
    resume: bool = False,
    validation_fraction: float = 0.2,
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressReporter | None = None,
) -> TrainingOutputs:
    """Run steps 1–4 of the module docstring and report progress; returns what was written.

    ``quick``: no optimisation (``trials`` is not used); ``control``: the paper's control
    (no oversampling, equal class weights).
    """
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = progress or ProgressReporter(quiet=True)
    if quick and resume:
        raise InputError("--resume continues an optimisation; a --quick run has none to continue")
    if not quick and trials < 1:
        raise InputError("--trials must be at least 1")
    try:
        parent = starting_parent(budget)
    except ValueError as exc:
        raise InputError(str(exc)) from exc
    cases = prepare_data(data_dir, budget, cache_dir or out / CACHE_FOLDER, progress)
    summary = data_summary(cases)
    blockers = training_blockers(summary, folds)
    if blockers:
        raise InputError(f"{data_dir}: " + "; ".join(blockers))
    data_folder = str(Path(data_dir).resolve())
    progress.note(f"{summary['cases']} cases ({summary['patients']} patients), {summary['slices']} slices, {summary['l3_slices']} L3 slices")
    if parent is not None:
        progress.note(f"starting from {parent.name} (SHA-256 {parent.sha256[:12]}…): its weights, preprocessing and locate rule")
    data_warnings = [w for w in (too_few_cases_warning(summary["patients"], quick),) if w]
    for warning in data_warnings:
        progress.note(f"WARNING: {warning}")

    finished = len(read_trials(out / TRIALS_FILE)) if resume else 0
    cv_folds = folds if folds >= 2 else 0
    optimisation_runs = 0 if quick else max(0, trials - finished)
    progress.plan((optimisation_runs + cv_folds + 1) * budget.epochs)
    progress.start()

    optimisation = None
    if quick:
        params = quick_parameters(parent)
        params = params.as_control() if control else params
        progress.note("quick run, no optimisation; design parameters: "
                      + ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in params.to_dict().items()))
    else:
        optimisation = optimise(cases, out, trials=trials, budget=budget, control=control, resume=resume,
                                validation_fraction=validation_fraction, data_folder=data_folder, progress=progress)
        params = optimisation.best.design
    best_objective = optimisation.best.objective if optimisation else None

    report_json = report_png = None
    cv_summary = comparison = None
    warnings = list(data_warnings)
    if cv_folds:
        report = cross_validate(cases, params, budget, cv_folds, progress=progress, parent=parent)
        report["data_folder"] = data_folder
        report["warnings"] = [*data_warnings, *report["warnings"]]
        report_json, report_png = write_report(report, out)
        cv_summary, warnings, comparison = report["summary"], report["warnings"], report.get("comparison")
    elif parent is not None:
        warnings.append(f"not compared with its parent {parent.name} (--folds < 2): whether adapting helped is unknown, "
                        "so the adapted model is not recommended")
    validated = bool(cv_folds) and cv_summary["failures"] == 0
    recommended = None if parent is None else bool(comparison and comparison["recommended"])

    def on_epoch(epoch: int, loss: float) -> None:
        progress.epoch_finished()
        progress.emit("epoch", trials=None if quick else trials, epoch=epoch, epochs=budget.epochs, loss=loss,
                      best_objective=best_objective, message="final model: training on all cases")

    final_budget = budget.with_seed(budget.seed + FINAL_SEED_OFFSET)
    result = train_model(cases, params, final_budget, on_epoch=on_epoch)
    metrics: dict[str, Any] = {"cross_validation": cv_summary, "validated": validated, "cross_validation_warnings": warnings,
                               "comparison_with_parent": comparison, "recommended": recommended}
    extra: dict[str, Any] = {"mode": "quick" if quick else "optimised", "run_seed": budget.seed, "control": control, "cv_folds": cv_folds}
    if optimisation is not None:
        best = optimisation.best
        metrics.update(best_trial_validation_f1=best.f1, best_trial_objective=best.objective)
        extra.update(best_trial=best.trial, trials=len(optimisation.records))
    data = {"folder": data_folder, **summary, "training_cases": [c.name for c in cases]}
    result.model.provenance = make_provenance("final", params, final_budget, result, data=data, metrics=metrics, **extra)
    final_path = result.model.save(out / FINAL_MODEL_FILE)
    card = write_model_card(out / MODEL_CARD_FILE, result.model.provenance, model_file=FINAL_MODEL_FILE, warnings=warnings)
    parent_identity = result.model.provenance["parent_model"]
    opening = "quick run" if optimisation is None else f"best trial {optimisation.best.trial}: F1 {optimisation.best.f1:.3f}"
    progress.emit("done", trials=None if quick else trials, best_objective=best_objective, model=str(final_path),
                  report=str(report_json) if report_json else None, validated=validated, warnings=warnings,
                  parent_model=parent_identity, comparison=comparison, recommended=recommended, model_card=str(card),
                  message=f"{opening}; final model {final_path}{validation_note(cv_folds, cv_summary)}"
                          f"{adaptation_note(parent, comparison)}")
    return TrainingOutputs(
        final_path, card, None if quick else out / BEST_MODEL_FILE, None if quick else out / TRIALS_FILE, report_json, report_png,
        optimisation, validated, warnings, parent_identity, comparison, recommended,
    )


def validation_note(cv_folds: int, cv_summary: dict | None) -> str:
    """What the cross-validation says about the final model, as a clause for the closing line
    (empty when it found an L3 in every labelled case)."""
    if not cv_folds or cv_summary is None:
        return " (not cross-validated: --folds < 2, so its accuracy is unknown)"
    if cv_summary["failures"]:
        return (f" — NOT VALIDATED: cross-validation found no L3 in {cv_summary['failures']} of {cv_summary['cases']} "
                "labelled case(s); see the WARNING lines and the report")
    return ""


def adaptation_note(parent: ParentModel | None, comparison: dict[str, Any] | None) -> str:
    """What the comparison with the parent says, as a clause for the closing line (empty for a
    run from random weights)."""
    if parent is None:
        return ""
    if comparison is None:
        return f" — NOT RECOMMENDED: not compared with its parent {parent.name}"
    if comparison["recommended"]:
        return f" — recommended over its parent: {comparison_text(comparison)}"
    return f" — NOT RECOMMENDED, keep using {parent.name}: {comparison_text(comparison)}"
