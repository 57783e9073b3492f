"""Splitting cases (never slices) into folds, seeded; a patient's cases stay together.

Patients (see :func:`~.dataset.patient_of`) are shuffled with ``numpy.random.default_rng(seed)``
and dealt round-robin into the folds, patients with an L3 first and those without after, so
both kinds spread evenly. A fold therefore never holds slices of a patient whose other slices
are on the other side.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .cache import PreparedCase


def _patients_in_dealing_order(cases: Sequence[PreparedCase], seed: int) -> list[str]:
    patients = sorted({c.patient for c in cases})
    with_l3 = {c.patient for c in cases if c.l3_range is not None}
    rng = np.random.default_rng(seed)
    order = [patients[i] for i in rng.permutation(len(patients))]
    return [p for p in order if p in with_l3] + [p for p in order if p not in with_l3]


def kfold_cases(cases: Sequence[PreparedCase], folds: int, seed: int) -> list[list[PreparedCase]]:
    """``folds`` disjoint groups of cases covering all of them (sizes in patients differ by ≤ 1).

    Raises:
        ValueError: fewer than 2 folds, or fewer patients than folds.
    """
    patients = _patients_in_dealing_order(cases, seed)
    if folds < 2:
        raise ValueError("cross-validation needs at least 2 folds")
    if len(patients) < folds:
        raise ValueError(f"{folds} folds need at least {folds} patients; the data has {len(patients)}")
    fold_of = {patient: number % folds for number, patient in enumerate(patients)}
    return [[c for c in cases if fold_of[c.patient] == fold] for fold in range(folds)]


def validation_split(
    cases: Sequence[PreparedCase], fraction: float, seed: int
) -> tuple[list[PreparedCase], list[PreparedCase]]:
    """``(training, validation)`` cases, about ``fraction`` of the patients held out (at least 1).

    Raises:
        ValueError: fewer than 2 patients, or a fraction outside (0, 1).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError("the validation fraction must be between 0 and 1")
    patients = _patients_in_dealing_order(cases, seed)
    if len(patients) < 2:
        raise ValueError("a validation split needs at least 2 patients")
    count = min(len(patients) - 1, max(1, int(round(fraction * len(patients)))))
    # Every (n / count)-th patient of the dealing order: cases with and without L3 in about their proportion.
    held_out = set(patients[:: max(1, len(patients) // count)][:count])
    return [c for c in cases if c.patient not in held_out], [c for c in cases if c.patient in held_out]
