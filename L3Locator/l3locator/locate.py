"""From per-slice L3 probabilities to one answer with a confidence and flags.

The rule (all distances in mm along the axial axis, so it behaves the same for 1 mm and 5 mm
slices):

1. **Smooth** the probabilities with a Gaussian, sigma ``smoothing_mm``, truncated at 3 sigma
   (isolated one-slice spikes are damped; an L3 body spans 25–40 mm, many slices).
2. **Candidates** are the maximal runs of consecutive slices whose smoothed probability is at
   least ``threshold``.
3. Each run's **mass** is the sum of its smoothed probabilities times the slice thickness: the
   expected length of L3 inside it, in mm. The run with the largest mass wins, among the runs
   whose centre slice passes the caller's anatomical check, if one is given
   (``reject_centre``; :mod:`l3locator.anatomy`: no lungs in an L3 slice).
4. The **L3 slice** is the probability-weighted centroid of the winning run, rounded to the
   nearest slice; the **L3 range** is the run's first and last slice.
5. **Confidence** = peak smoothed probability of the run × its share of the total mass of all
   runs × an extent factor (1 when the run is 10–60 mm long, 0.5 otherwise).

Flags:

* ``no_l3_found``: no run, or the best run's mass is below ``min_mass_mm`` (weak evidence), or
  every run was rejected by the anatomical check.
* ``anatomy_rejected``: at least one run was rejected by the anatomical check (its mass still
  counts in the confidence's denominator: the model's evidence was split).
* ``multiple_candidates``: another run has at least ``rival_fraction`` of the winner's mass.
* ``l3_at_scan_edge``: the winning run touches the first or last slice (L3 may be cut off).
* ``implausible_extent``: the winning run is shorter than 10 mm or longer than 60 mm.
* ``low_confidence``: the confidence is below ``low_confidence`` (review by a person).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

PLAUSIBLE_EXTENT_MM = (10.0, 60.0)
#: The smoothing Gaussian ends this many sigmas from its centre (the weights beyond 3 sigma sum
#: to 0.3 %, and each slice that far is one more the fast path must score).
SMOOTHING_TRUNCATE = 3.0


@dataclass(frozen=True)
class LocateRule:
    """Parameters of the rule above (mm, probabilities, fractions).

    A model file carries the rule chosen for its model (:attr:`L3Model.locate_rule
    <l3locator.modelfile.L3Model>`); these defaults are for models that name none.
    """

    smoothing_mm: float = 4.0
    threshold: float = 0.5
    min_mass_mm: float = 4.0
    rival_fraction: float = 0.3
    low_confidence: float = 0.5

    def __post_init__(self) -> None:
        if self.smoothing_mm < 0 or self.min_mass_mm < 0:
            raise ValueError("smoothing_mm and min_mass_mm must not be negative")
        for name in ("threshold", "rival_fraction", "low_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LocateRule:
        """The rule a model file stores; unknown keys or bad values raise ``ValueError``."""
        unknown = set(values) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown locate rule settings: {sorted(unknown)}")
        return cls(**{k: float(v) for k, v in values.items()})


@dataclass
class Localization:
    """The answer for one scan. Slice indices are 0-based along the axial axis, inclusive ranges."""

    l3_found: bool
    slice_index: int | None
    slice_range: tuple[int, int] | None
    confidence: float
    flags: list[str] = field(default_factory=list)
    smoothed: np.ndarray | None = None


def find_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive ``(first, last)`` index pairs of the runs of True in a 1D boolean array."""
    padded = np.concatenate(([False], np.asarray(mask, dtype=bool), [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def smooth(values: np.ndarray, slice_thickness_mm: float, rule: LocateRule = LocateRule()) -> np.ndarray:
    """Step 1 of the rule: Gaussian smoothing with sigma ``rule.smoothing_mm``, truncated at
    :data:`SMOOTHING_TRUNCATE` sigmas (float64; linear, with non-negative weights, so it also maps
    per-slice error bounds to smoothed ones)."""
    sigma = rule.smoothing_mm / slice_thickness_mm
    values = np.asarray(values, dtype=np.float64)
    return gaussian_filter1d(values, sigma, mode="nearest", truncate=SMOOTHING_TRUNCATE) if sigma >= 0.25 else values.copy()


def locate_l3(
    probabilities: np.ndarray,
    slice_thickness_mm: float,
    rule: LocateRule = LocateRule(),
    *,
    reject_centre: Callable[[int], bool] | None = None,
) -> Localization:
    """Apply the rule to ``probabilities`` (one per slice, in [0, 1]); see the module docstring.

    ``reject_centre(slice_index)`` is asked about each candidate run's centre slice (strongest
    runs first, stopping at the first it accepts); True removes that run from the choice.
    """
    p = np.asarray(probabilities, dtype=np.float64)
    if p.ndim != 1 or len(p) == 0:
        raise ValueError("probabilities must be a non-empty 1D array")
    if slice_thickness_mm <= 0:
        raise ValueError("slice thickness must be positive")
    smoothed = smooth(p, slice_thickness_mm, rule)
    runs = find_runs(smoothed >= rule.threshold)
    masses = [float(smoothed[a : b + 1].sum()) * slice_thickness_mm for a, b in runs]

    def centre_of(run: tuple[int, int]) -> int:
        weights = smoothed[run[0] : run[1] + 1]
        return int(round(float(np.sum(np.arange(run[0], run[1] + 1) * weights) / weights.sum())))

    flags: list[str] = []
    best: int | None = None
    for index in sorted(range(len(runs)), key=lambda i: -masses[i]):
        if masses[index] < rule.min_mass_mm:
            break
        if reject_centre is not None and reject_centre(centre_of(runs[index])):
            if "anatomy_rejected" not in flags:
                flags.append("anatomy_rejected")
            continue
        best = index
        break
    if best is None:
        return Localization(False, None, None, 0.0, ["no_l3_found", *flags], smoothed)

    first, last = runs[best]
    weights = smoothed[first : last + 1]
    centre = centre_of(runs[best])
    if any(m >= rule.rival_fraction * masses[best] for i, m in enumerate(masses) if i != best):
        flags.append("multiple_candidates")
    if first == 0 or last == len(p) - 1:
        flags.append("l3_at_scan_edge")
    extent_mm = (last - first + 1) * slice_thickness_mm
    plausible = PLAUSIBLE_EXTENT_MM[0] <= extent_mm <= PLAUSIBLE_EXTENT_MM[1]
    if not plausible:
        flags.append("implausible_extent")
    confidence = float(weights.max()) * masses[best] / sum(masses) * (1.0 if plausible else 0.5)
    if confidence < rule.low_confidence:
        flags.append("low_confidence")
    return Localization(True, centre, (first, last), confidence, flags, smoothed)
