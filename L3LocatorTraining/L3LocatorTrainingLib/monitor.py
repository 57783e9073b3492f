"""What the ``L3LOCATOR_PROGRESS`` lines of a training run say so far (Qt-free).

The line format is the core's (:mod:`l3locator.training.progress`): the prefix, a space, and
one JSON object with a ``stage``; the ``done`` line names the model and the report and lists
warnings (sentences: what makes the model doubtful, e.g. a cross-validation fold without L3);
for a model adapted from another it also names that *parent* and carries the comparison of the
two on the same held-out cases and whether the adapted model is recommended.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

from l3locator.training.progress import PREFIX

#: How many of the run's other output lines are kept for an error report.
RECENT_LINES = 50


def parseProgressLine(line: str) -> dict[str, Any] | None:
    """The record of an ``L3LOCATOR_PROGRESS {json}`` line, or None for any other line."""
    text = line.strip()
    if not text.startswith(PREFIX + " "):
        return None
    try:
        record = json.loads(text[len(PREFIX) + 1 :])
    except json.JSONDecodeError:
        return None
    return record if isinstance(record, dict) and "stage" in record else None


@dataclass
class TrainingMonitor:
    """The state of a run from its progress lines, for the status line and the progress bar.

    ``etaSeconds``: the run's own estimate of the seconds left. ``warnings``, ``parentModel``
    (``{"name", "sha256"}``), ``comparison`` and ``recommended`` (None for a model trained from
    random weights): from the ``done`` line. ``started``: ``time.monotonic()`` when monitoring began.
    """

    stage: str = ""
    trial: int | None = None
    trials: int | None = None
    epoch: int | None = None
    epochs: int | None = None
    bestObjective: float | None = None
    etaSeconds: float | None = None
    message: str = ""
    modelPath: str = ""
    reportPath: str = ""
    warnings: list[str] = field(default_factory=list)
    parentModel: dict[str, Any] | None = None
    comparison: dict[str, Any] | None = None
    recommended: bool | None = None
    started: float = field(default_factory=time.monotonic)
    _recent: list[str] = field(default_factory=list)

    def consume(self, line: str) -> dict[str, Any] | None:
        """Update from one output line; returns its progress record, or None for a log line."""
        record = parseProgressLine(line)
        if record is None:
            self._recent = [*self._recent[-(RECENT_LINES - 1) :], line]
            return None
        self.stage = record["stage"]
        for key, attribute in (("trial", "trial"), ("trials", "trials"), ("epoch", "epoch"), ("epochs", "epochs"), ("eta_s", "etaSeconds")):
            setattr(self, attribute, record.get(key))
        if record.get("best_objective") is not None:
            self.bestObjective = record["best_objective"]
        self.message = record.get("message") or ""
        if self.stage == "done":
            self.modelPath = record.get("model") or ""
            self.reportPath = record.get("report") or ""
            self.warnings = [str(warning) for warning in record.get("warnings") or []]
            self.parentModel, self.comparison, self.recommended = record.get("parent_model"), record.get("comparison"), record.get("recommended")
            self.etaSeconds = 0.0
        return record

    def lastLines(self) -> list[str]:
        """The last (up to :data:`RECENT_LINES`) non-progress output lines, for an error report."""
        return list(self._recent)

    def fraction(self) -> float:
        """Share of the run done, from the elapsed time and the run's own time estimate."""
        if self.stage == "done":
            return 1.0
        if self.etaSeconds is None:
            return 0.0
        elapsed = time.monotonic() - self.started
        return elapsed / (elapsed + self.etaSeconds) if elapsed + self.etaSeconds > 0 else 0.0

    def statusText(self) -> str:
        """e.g. ``Trial 3 of 10, epoch 2 of 5 · best F1 0.81 (1/F1 1.23) · about 4 min left``."""
        if not self.stage:
            return "Preparing the data…"
        if self.stage == "done":
            parts = ["Finished"]
        elif self.stage == "cv_fold":
            parts = [f"Cross-validation fold {self.trial} of {self.trials}"]
        elif self.trial is None:
            parts = ["Training the final model"]
        else:
            parts = [f"Trial {self.trial} of {self.trials}"]
        if self.epoch is not None and self.stage != "done":
            parts[0] += f", epoch {self.epoch} of {self.epochs}"
        if self.bestObjective:
            parts.append(f"best F1 {1.0 / self.bestObjective:.3f} (1/F1 {self.bestObjective:.3g})")
        if self.etaSeconds and self.stage != "done":
            minutes = self.etaSeconds / 60.0
            parts.append(f"about {minutes:.0f} min left" if minutes >= 1.5 else f"about {self.etaSeconds:.0f} s left")
        return " · ".join(parts)
