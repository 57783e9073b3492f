"""The whole ``l3locator train`` job: data → optimisation → cross-validation → final model.

1. **Data**: the folder's cases are found (:func:`~.dataset.discover_cases`) and their slices
   preprocessed once into the cache (:mod:`.cache`; default ``<output>/slice_cache``).
2. **Optimisation** (:func:`~.optimize.optimise`): ``trials`` trials, each trained on the
   training cases and scored on held-out validation cases; the best trial's model is
   ``best_model.pt``.
3. **Cross-validation** (when ``folds >= 2``, :func:`~.evaluate.cross_validate`): with the best
   trial's design parameters, ``folds`` networks are re-trained, each without one fold of
   patients, and every case is scored by the network that did not see it →
   ``cv_report.json`` and ``cv_report.png``. (The parameters were chosen on a validation split
   of the same cases, so this estimate is slightly optimistic, as in the paper's design.)
4. **Final model**: one more network with the best parameters, trained on *all* cases (seed
   ``seed + 2000``) → ``final_model.pt``, whose provenance carries the cross-validation summary
   as its expected accuracy. This is the model to use; the ``done`` progress line names it.

The final model counts as **validated** only when cross-validation ran and found an L3 in
every labelled case. Otherwise the run still writes it, but says so: each warning of the
cross-validation report (a fold that found no L3 in any case, failures, false positives) is in
the ``done`` progress line's ``warnings`` (``l3locator train`` prints each as a ``WARNING:``
line), the ``done`` line carries ``validated`` and its message says "NOT VALIDATED", and the
model's provenance records both (``metrics.validated``, ``metrics.cross_validation_warnings``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..choices import CACHE_FOLDER
from .cache import PreparedCase, prepare_cases
from .dataset import data_summary, discover_cases, training_blockers
from .evaluate import cross_validate, write_report
from .optimize import BEST_MODEL_FILE, TRIALS_FILE, OptimisationResult, optimise, read_trials
from .progress import ProgressReporter
from .provenance import make_provenance
from .train import TrainingBudget, train_model

FINAL_MODEL_FILE = "final_model.pt"
FINAL_SEED_OFFSET = 2000


@dataclass
class TrainingOutputs:
    """Paths written by :func:`run_training` (``report_*`` None without cross-validation), whether
    the final model is validated, and the cross-validation's warnings (see the module docstring)."""

    final_model: Path
    best_model: Path
    trials_log: Path
    report_json: Path | None
    report_png: Path | None
    optimisation: OptimisationResult
    validated: bool
    warnings: list[str]


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
    trials: int,
    folds: int,
    budget: TrainingBudget,
    control: bool = False,
    resume: bool = False,
    validation_fraction: float = 0.2,
    cache_dir: str | os.PathLike | None = None,
    progress: ProgressReporter | None = None,
) -> TrainingOutputs:
    """Run steps 1–4 of the module docstring and report progress; returns what was written."""
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    progress = progress or ProgressReporter(quiet=True)
    if trials < 1:
        raise InputError("--trials must be at least 1")
    cases = prepare_data(data_dir, budget, cache_dir or out / CACHE_FOLDER, progress)
    summary = data_summary(cases)
    blockers = training_blockers(summary, folds)
    if blockers:
        raise InputError(f"{data_dir}: " + "; ".join(blockers))
    data_folder = str(Path(data_dir).resolve())
    progress.note(f"{summary['cases']} cases ({summary['patients']} patients), {summary['slices']} slices, {summary['l3_slices']} L3 slices")

    finished = len(read_trials(out / TRIALS_FILE)) if resume else 0
    cv_folds = folds if folds >= 2 else 0
    progress.plan((max(0, trials - finished) + cv_folds + 1) * budget.epochs)
    progress.start()

    optimisation = optimise(cases, out, trials=trials, budget=budget, control=control, resume=resume,
                            validation_fraction=validation_fraction, data_folder=data_folder, progress=progress)
    best = optimisation.best
    params = best.design

    report_json = report_png = None
    cv_summary = None
    warnings: list[str] = []
    if cv_folds:
        report = cross_validate(cases, params, budget, cv_folds, progress=progress)
        report["data_folder"] = data_folder
        report_json, report_png = write_report(report, out)
        cv_summary, warnings = report["summary"], report["warnings"]
    validated = bool(cv_folds) and cv_summary["failures"] == 0

    def on_epoch(epoch: int, loss: float) -> None:
        progress.epoch_finished()
        progress.emit("epoch", trials=trials, epoch=epoch, epochs=budget.epochs, loss=loss, best_objective=best.objective,
                      message="final model: training on all cases")

    final_budget = budget.with_seed(budget.seed + FINAL_SEED_OFFSET)
    result = train_model(cases, params, final_budget, on_epoch=on_epoch)
    metrics = {"best_trial_validation_f1": best.f1, "best_trial_objective": best.objective, "cross_validation": cv_summary,
               "validated": validated, "cross_validation_warnings": warnings}
    data = {"folder": data_folder, **summary, "training_cases": [c.name for c in cases]}
    result.model.provenance = make_provenance("final", params, final_budget, result, data=data, metrics=metrics,
                                              best_trial=best.trial, trials=len(optimisation.records), run_seed=budget.seed,
                                              control=control, cv_folds=cv_folds)
    final_path = result.model.save(out / FINAL_MODEL_FILE)
    progress.emit("done", trials=trials, best_objective=best.objective, model=str(final_path),
                  report=str(report_json) if report_json else None, validated=validated, warnings=warnings,
                  message=f"best trial {best.trial}: F1 {best.f1:.3f}; final model {final_path}{validation_note(cv_folds, cv_summary)}")
    return TrainingOutputs(final_path, out / BEST_MODEL_FILE, out / TRIALS_FILE, report_json, report_png, optimisation, validated, warnings)


def validation_note(cv_folds: int, cv_summary: dict | None) -> str:
    """What the cross-validation says about the final model, as a clause for the closing line
    (empty when it found an L3 in every labelled case)."""
    if not cv_folds or cv_summary is None:
        return " (not cross-validated: --folds < 2, so its accuracy is unknown)"
    if cv_summary["failures"]:
        return (f" — NOT VALIDATED: cross-validation found no L3 in {cv_summary['failures']} of {cv_summary['cases']} "
                "labelled case(s); see the WARNING lines and the report")
    return ""
