"""Progress of a training run: a human line on stderr and, optionally, JSON lines on stdout.

Machine-readable lines (``--progress json``) are printed on stdout as::

    L3LOCATOR_PROGRESS {"stage": ..., "trial": ..., "trials": ..., "epoch": ..., "epochs": ...,
                        "loss": ..., "objective": ..., "best_objective": ..., "eta_s": ...,
                        "message": ...}

Every line has all ten keys (``null`` where a value does not apply); the ``"done"`` line also
has ``"model"`` (the model file: the final model of ``train``, the evaluated one of
``evaluate``) and ``"report"`` (the report JSON, or ``null`` when ``train`` ran no
cross-validation) and ``"warnings"`` (sentences; empty when all went well); ``train``'s also has
``"validated"`` (true only when cross-validation found an L3 in every labelled case),
``"model_card"`` (the card beside the final model), ``"parent_model"`` (``{"name", "sha256"}``
of the model it started from), ``"comparison"`` (the adapted model against its parent on the
same held-out cases, :func:`~.adapt.compare_with_parent`) and ``"recommended"`` (true only when
it beat its parent there), the last three null for a model trained from random weights;
``evaluate``'s ``"in_sample"`` (see :mod:`.evaluate`). Lines are strict JSON: non-finite numbers
are ``null``. Stages:

* ``trial_start`` / ``trial_end``: a Bayesian-optimisation trial (``trial`` of ``trials``, from 1);
  ``trial_end`` carries the trial's ``objective`` (1 / F1) and the ``best_objective`` so far.
* ``epoch``: an epoch finished (``loss`` = its mean training loss). During optimisation
  ``trial`` is set; while the final model is trained ``trial`` is ``null`` and ``message`` says so.
* ``cv_fold``: cross-validation; here ``trial`` / ``trials`` count *folds*. Sent after each
  epoch of a fold's training (``epoch`` set) and when the fold is scored (``epoch`` null,
  ``objective`` = 1 / F1 of the held-out cases).
* ``done``: the run finished.

``eta_s`` is the estimated seconds left: the time since training started divided by the epochs
finished (so validation and scoring are included), times the epochs still planned (trials,
folds and the final model); ``null`` until an epoch has finished.
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from .strict_json import finite_or_none, json_text

PREFIX = "L3LOCATOR_PROGRESS"
STAGES = ("trial_start", "epoch", "trial_end", "cv_fold", "done")
KEYS = ("stage", "trial", "trials", "epoch", "epochs", "loss", "objective", "best_objective", "eta_s", "message")
MODES = ("text", "json")
BAR_WIDTH = 20


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


class ProgressReporter:
    """Reports stages (see the module docstring) and keeps the ETA.

    Args:
        mode: ``"text"`` (stderr only) or ``"json"`` (stderr and the JSON lines on stdout).
        total_epochs: epochs planned for the whole run (updated with :meth:`plan`).
        text_stream / json_stream: where the two kinds of lines go (stderr / stdout).
        quiet: no human lines (tests, or a caller that shows its own progress).
    """

    def __init__(
        self,
        mode: str = "text",
        total_epochs: int = 0,
        *,
        text_stream: TextIO | None = None,
        json_stream: TextIO | None = None,
        quiet: bool = False,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"progress mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.total_epochs = total_epochs
        self.epochs_done = 0
        self.text_stream = text_stream
        self.json_stream = json_stream
        self.quiet = quiet
        self._started: float | None = None

    def plan(self, total_epochs: int) -> None:
        """Set how many epochs the whole run will train (for the ETA and the bar)."""
        self.total_epochs = total_epochs

    def start(self) -> None:
        """Start the clock (after data preparation, before the first training run)."""
        self._started = time.perf_counter()

    def epoch_finished(self) -> None:
        """Count one finished epoch towards the bar and the ETA."""
        self.epochs_done += 1

    @property
    def eta_s(self) -> float | None:
        if self.epochs_done == 0 or self._started is None:
            return None
        remaining = max(0, self.total_epochs - self.epochs_done)
        return round((time.perf_counter() - self._started) / self.epochs_done * remaining, 1)

    def emit(self, stage: str, **values: Any) -> dict[str, Any]:
        """Report one event; returns the record (all :data:`KEYS`, plus extras for ``done``)."""
        if stage not in STAGES:
            raise ValueError(f"unknown progress stage {stage!r}")
        record = {key: None for key in KEYS}
        record.update(stage=stage, eta_s=self.eta_s, message="")
        record.update(finite_or_none(values))
        if self.mode == "json":
            stream = self.json_stream or sys.stdout
            stream.write(f"{PREFIX} {json_text(record)}\n")
            stream.flush()
        if not self.quiet:
            stream = self.text_stream or sys.stderr
            stream.write(self.human_line(record) + "\n")
            stream.flush()
        return record

    def note(self, message: str) -> None:
        """A human-only line on stderr (data preparation, warnings); no JSON line."""
        if not self.quiet:
            stream = self.text_stream or sys.stderr
            stream.write(message + "\n")
            stream.flush()

    def human_line(self, record: dict[str, Any]) -> str:
        """The stderr line of a record: a bar of finished epochs, the stage's numbers, the ETA."""
        fraction = min(1.0, self.epochs_done / self.total_epochs) if self.total_epochs else 0.0
        if record["stage"] == "done":
            fraction = 1.0
        filled = int(round(fraction * BAR_WIDTH))
        parts = [f"[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {fraction * 100:3.0f}%"]
        unit = "fold" if record["stage"] == "cv_fold" else "trial"
        if record["trial"] is not None:
            parts.append(f"{unit} {record['trial']}/{record['trials']}")
        if record["epoch"] is not None:
            parts.append(f"epoch {record['epoch']}/{record['epochs']}")
        if record["loss"] is not None:
            parts.append(f"loss {record['loss']:.4f}")
        if record["objective"] is not None:
            parts.append(f"1/F1 {record['objective']:.3g}")
        if record["best_objective"] is not None:
            parts.append(f"best {record['best_objective']:.3g}")
        if record["stage"] != "done":
            parts.append(f"ETA {format_duration(record['eta_s'])}")
        if record["message"]:
            parts.append(str(record["message"]))
        return " | ".join(parts)
