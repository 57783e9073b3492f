"""Per-slice classification counts, F1 of the L3 class, and the optimisation objective."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: A slice is called L3 when its L3 probability is at least this (the softmax argmax).
SLICE_THRESHOLD = 0.5
#: Objective reported when F1 = 0 (1 / F1 would be infinite): large but finite for the optimiser.
OBJECTIVE_AT_ZERO_F1 = 1e3


@dataclass(frozen=True)
class SliceCounts:
    """True positives, false positives and false negatives of the L3 class over slices."""

    tp: int = 0
    fp: int = 0
    fn: int = 0

    def __add__(self, other: SliceCounts) -> SliceCounts:
        return SliceCounts(self.tp + other.tp, self.fp + other.fp, self.fn + other.fn)

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        """2 TP / (2 TP + FP + FN); 0 when there is nothing to find and nothing was called L3."""
        denominator = 2 * self.tp + self.fp + self.fn
        return 2 * self.tp / denominator if denominator else 0.0


def slice_counts(targets: np.ndarray, probabilities: np.ndarray, threshold: float = SLICE_THRESHOLD) -> SliceCounts:
    """Counts for one case: ``targets`` (1 = L3) against ``probabilities >= threshold``."""
    truth = np.asarray(targets) == 1
    called = np.asarray(probabilities) >= threshold
    return SliceCounts(int(np.sum(truth & called)), int(np.sum(~truth & called)), int(np.sum(truth & ~called)))


def objective_from_f1(f1: float) -> float:
    """The value the optimiser minimises: 1 / F1, or :data:`OBJECTIVE_AT_ZERO_F1` when F1 = 0."""
    return 1.0 / f1 if f1 > 0 else OBJECTIVE_AT_ZERO_F1
