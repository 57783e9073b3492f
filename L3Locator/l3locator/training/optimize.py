"""Bayesian optimisation of the design parameters (scikit-optimize ``Optimizer``, ask/tell).

Each trial trains a network (:func:`~.train.train_model`) with the point the optimiser asks for,
on the *training* cases, and scores every slice of the held-out *validation* cases (a seeded
split by patient, :func:`~.splits.validation_split`). The objective is ``1 / F1`` of the L3
class over those slices (``1e3`` when F1 = 0, so the optimiser always gets a finite number).

Files in the output folder:

* ``run.json``: the run's settings (seed, control flag, budget, case split, data summary). A
  resumed run must have the same ones, else it stops with a message naming what differs.
* ``trials.jsonl``: one JSON object per finished trial, added as the trial ends: ``trial``
  (from 1), ``params``, ``point``, ``objective``, ``f1``, ``precision``, ``recall``,
  ``seconds``, ``epoch_losses``, ``slices_per_second``, ``seed``, ``finished``.
* ``best_model.pt``: the best trial's model so far (:meth:`~l3locator.modelfile.L3Model.save`),
  with provenance (data summary, design parameters, validation metrics, budget, date, seeds).
  It is written *before* its trial's log line, so a logged best trial always has its file.

Every file is written atomically (:func:`~l3locator.atomic.write_atomically`; the log is
rewritten whole with its new line), JSON as strict JSON (:mod:`.strict_json`), so a crash
never leaves a torn line or half a file.

Resuming (``resume=True``) re-reads the log and replays it into a fresh optimiser: for each
logged trial it asks (advancing the optimiser's random state exactly as the first session did)
and tells the logged point and objective; then it runs the trials still missing up to
``trials`` in total. Finished trials are never re-run, and the continued run asks for the same
points an uninterrupted run would have.

Seeds: the optimiser uses ``budget.seed``; trial ``n`` trains with seed ``budget.seed + n``.
The first :data:`N_INITIAL_POINTS` trials are random points; later ones maximise expected
improvement under a Gaussian-process model of the objective.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from skopt import Optimizer

from ..atomic import write_atomically
from ..errors import L3LocatorError
from .cache import PreparedCase
from .dataset import data_summary
from .design import DesignParameters, params_from_point, point_from_params, search_space
from .metrics import objective_from_f1
from .progress import ProgressReporter
from .provenance import make_provenance, now_iso
from .splits import validation_split
from .strict_json import json_text, write_json
from .train import TrainingBudget, train_model, validation_counts

TRIALS_FILE = "trials.jsonl"
RUN_FILE = "run.json"
BEST_MODEL_FILE = "best_model.pt"
N_INITIAL_POINTS = 5
ACQUISITION = "EI"
#: Settings that must match between a run and its resumption.
RESUME_KEYS = ("seed", "control", "budget", "validation_fraction", "training_cases", "validation_cases")
#: Budget entries that may change on resumption (where and how fast, not what is trained).
RESUME_FREE_BUDGET_KEYS = ("device", "precision", "eval_batch_size")


@dataclass
class TrialRecord:
    """One finished trial, as logged in ``trials.jsonl``."""

    trial: int
    params: dict[str, Any]
    point: list[Any]
    objective: float
    f1: float
    precision: float
    recall: float
    seconds: float
    epoch_losses: list[float | None]
    slices_per_second: float
    seed: int
    finished: str

    @property
    def design(self) -> DesignParameters:
        return DesignParameters.from_dict(self.params)


@dataclass
class OptimisationResult:
    """All trials (in order) and the best one (lowest objective; the earliest on ties)."""

    records: list[TrialRecord]
    best: TrialRecord
    training_cases: list[PreparedCase]
    validation_cases: list[PreparedCase]


def read_trials(path: str | os.PathLike) -> list[TrialRecord]:
    """Trials logged in ``path`` (missing file: none).

    Raises:
        L3LocatorError: a line is not a trial record.
    """
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(TrialRecord(**json.loads(line)))
        except (json.JSONDecodeError, TypeError) as exc:
            raise L3LocatorError(f"{path}: line {number} is not a trial record ({exc}); remove that line to resume the run") from exc
    return records


def append_trial(path: Path, record: TrialRecord) -> None:
    """Add one record as a JSON line: the log is rewritten atomically with the line at its end."""
    logged = path.read_text(encoding="utf-8") if path.is_file() else ""
    text = logged + json_text(asdict(record)) + "\n"
    write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _check_resumable(run_file: Path, settings: dict[str, Any]) -> None:
    stored = json.loads(run_file.read_text(encoding="utf-8"))

    def comparable(values: dict[str, Any]) -> dict[str, Any]:
        budget = {k: v for k, v in (values.get("budget") or {}).items() if k not in RESUME_FREE_BUDGET_KEYS}
        return {**{key: values.get(key) for key in RESUME_KEYS}, "budget": budget}

    before, now = comparable(stored), comparable(settings)
    differing = [key for key in RESUME_KEYS if before[key] != now[key]]
    if differing:
        raise L3LocatorError(
            f"cannot resume the run in {run_file.parent}: these settings differ from the stored run's: "
            f"{', '.join(differing)} (resuming needs the same data, seed, budget and --control); use a new --output-dir"
        )


def _same_point(a: Sequence[Any], b: Sequence[Any]) -> bool:
    return all(
        math.isclose(x, y, rel_tol=1e-9) if isinstance(x, float) or isinstance(y, float) else x == y
        for x, y in zip(a, b)
    )


def optimise(
    cases: Sequence[PreparedCase],
    output_dir: str | os.PathLike,
    *,
    trials: int,
    budget: TrainingBudget,
    control: bool = False,
    resume: bool = False,
    validation_fraction: float = 0.2,
    data_folder: str = "",
    progress: ProgressReporter | None = None,
) -> OptimisationResult:
    """Run (or continue) the optimisation up to ``trials`` trials in total; see the module docstring.

    Raises:
        L3LocatorError: the output folder already holds a run and ``resume`` is False, or the
            run to resume was made with other settings.
    """
    if trials < 1:
        raise ValueError("at least one trial is needed")
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    trials_file, run_file = out / TRIALS_FILE, out / RUN_FILE
    progress = progress or ProgressReporter(quiet=True)

    training, validation = validation_split(cases, validation_fraction, budget.seed)
    settings = {
        "seed": budget.seed,
        "control": control,
        "budget": budget.to_dict(),
        "validation_fraction": validation_fraction,
        "training_cases": [c.name for c in training],
        "validation_cases": [c.name for c in validation],
    }
    records = read_trials(trials_file)
    if records and not resume:
        raise L3LocatorError(f"{out} already holds {len(records)} trial(s); pass --resume to continue them, or choose another --output-dir")
    if records:
        if not run_file.is_file():
            raise L3LocatorError(f"cannot resume: {run_file} is missing")
        _check_resumable(run_file, settings)
    else:
        data = {"folder": data_folder, **data_summary(cases), "training": data_summary(training), "validation": data_summary(validation)}
        write_json(run_file, {**settings, "data": data, "created": now_iso()}, indent=2)

    optimiser = Optimizer(search_space(control), base_estimator="GP", n_initial_points=N_INITIAL_POINTS, acq_func=ACQUISITION, random_state=budget.seed)
    replay_mismatch = 0
    for record in records:
        asked = optimiser.ask()
        replay_mismatch += not _same_point(asked, record.point)
        optimiser.tell(record.point, record.objective)
    best = min(records, key=lambda r: r.objective) if records else None
    if records:
        note = f"; {replay_mismatch} replayed point(s) differ from this machine's optimiser" if replay_mismatch else ""
        progress.emit("trial_end", trial=len(records), trials=trials, objective=records[-1].objective, best_objective=best.objective,
                      message=f"resumed after {len(records)} finished trial(s){note}")

    data = {"folder": data_folder, **data_summary(cases), "training_cases": settings["training_cases"], "validation_cases": settings["validation_cases"]}
    for number in range(len(records) + 1, trials + 1):
        point = optimiser.ask()
        params = params_from_point(point, control)
        seed = budget.seed + number
        trial_budget = budget.with_seed(seed)
        best_objective = best.objective if best else None
        progress.emit("trial_start", trial=number, trials=trials, epochs=budget.epochs, best_objective=best_objective,
                      message=", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in params.to_dict().items()))

        def on_epoch(epoch: int, loss: float, number: int = number, best_objective: float | None = best_objective) -> None:
            progress.epoch_finished()
            progress.emit("epoch", trial=number, trials=trials, epoch=epoch, epochs=budget.epochs, loss=loss, best_objective=best_objective)

        started = time.perf_counter()
        result = train_model(training, params, trial_budget, on_epoch=on_epoch)
        counts = validation_counts(result.model, validation, batch_size=budget.eval_batch_size, device=budget.device)
        objective = objective_from_f1(counts.f1)
        record = TrialRecord(
            trial=number, params=params.to_dict(), point=point_from_params(params, control), objective=objective,
            f1=counts.f1, precision=counts.precision, recall=counts.recall, seconds=round(time.perf_counter() - started, 2),
            epoch_losses=[_finite(v) for v in result.epoch_losses], slices_per_second=round(result.slices_per_second, 1),
            seed=seed, finished=now_iso(),
        )
        if best is None or objective < best.objective:
            metrics = {"validation_f1": counts.f1, "validation_precision": counts.precision, "validation_recall": counts.recall,
                       "objective": objective, "validation_slice_counts": asdict(counts)}
            result.model.provenance = make_provenance("best_trial", params, trial_budget, result, data=data, metrics=metrics,
                                                      trial=number, run_seed=budget.seed, control=control)
            result.model.save(out / BEST_MODEL_FILE)
            best = record
        append_trial(trials_file, record)
        records.append(record)
        optimiser.tell(record.point, objective)
        progress.emit("trial_end", trial=number, trials=trials, objective=objective, best_objective=best.objective,
                      message=f"F1 {counts.f1:.3f} (precision {counts.precision:.3f}, recall {counts.recall:.3f}) in {record.seconds:.0f} s")
    return OptimisationResult(records, best, training, validation)
