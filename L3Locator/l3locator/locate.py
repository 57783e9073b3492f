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
* ``level_disagreement`` and ``level_count_answer`` (added by
  :func:`~l3locator.pipeline.result_from_probabilities`, not by this rule): the classical vertebra
  count (:mod:`l3locator.level_count`: from the sacrum and from the lowest ribs, both agreeing)
  puts L3 more than a quarter vertebra outside the winning run's centre; the confidence is halved (at
  most 0.3) and ``low_confidence`` added when it falls below the threshold. When another
  candidate run (mass at least ``min_mass_mm``) has its centre inside the counted L3, the
  network saw L3 there too: the answer moves to the middle of the counted range
  (``level_count_answer``); otherwise the answer slice is kept.

**The rule under bounds** (:func:`uncertain_slices`): when each probability is only known to
lie within a bound of a value (bfloat16 scores, :func:`probability_bounds`), the same steps tell
whether the answer could change. Smoothing is linear with non-negative weights, so it maps the
bounds to bounds of the smoothed values; masses are sums, so they map those to bounds of the
masses; and each comparison the answer rests on (a slice's side of the threshold, ``min_mass_mm``,
which run is heaviest, the rival share, the centre's rounding, ``low_confidence``) is checked
for whether it could go the other way. Each piece (runs, mass, centre, extent, confidence, rival
share) is one function below, used by both :func:`locate_l3` and :func:`uncertain_slices`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .stored_settings import check_known_keys

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

    def to_dict(self) -> dict[str, float]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LocateRule:
        """The rule a model file stores; unknown keys or bad values raise ``ValueError``."""
        check_known_keys(cls, values, "locate rule settings")
        return cls(**{k: float(v) for k, v in values.items()})

    def __post_init__(self) -> None:
        if self.smoothing_mm < 0 or self.min_mass_mm < 0:
            raise ValueError("smoothing_mm and min_mass_mm must not be negative")
        for name in ("threshold", "rival_fraction", "low_confidence"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be in [0, 1]")


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


def candidate_runs(smoothed: np.ndarray, rule: LocateRule) -> list[tuple[int, int]]:
    """Step 2: the maximal runs of slices whose smoothed probability is at least ``rule.threshold``."""
    return find_runs(smoothed >= rule.threshold)


def run_masses_mm(values: np.ndarray, runs: list[tuple[int, int]], slice_thickness_mm: float) -> np.ndarray:
    """Step 3: per run, the sum of ``values`` over its slices times the slice thickness (mm).

    Of the smoothed probabilities it gives the masses; being a sum, of their bounds it gives the
    masses' bounds.
    """
    return np.array([float(values[first : last + 1].sum()) for first, last in runs]) * slice_thickness_mm


def run_centre(smoothed: np.ndarray, run: tuple[int, int]) -> float:
    """Step 4: the probability-weighted centroid of ``run`` (a fractional slice index)."""
    first, last = run
    weights = smoothed[first : last + 1]
    return float(np.sum(np.arange(first, last + 1) * weights) / weights.sum())


def centre_slice(centre: float) -> int:
    """Step 4: the slice a centroid is rounded to (rounding is monotone, so an interval of
    centroids rounds to one slice when both its ends do)."""
    return int(round(centre))


def plausible_extent(run: tuple[int, int], slice_thickness_mm: float) -> bool:
    """Whether ``run`` is 10–60 mm long (:data:`PLAUSIBLE_EXTENT_MM`)."""
    extent_mm = (run[1] - run[0] + 1) * slice_thickness_mm
    return PLAUSIBLE_EXTENT_MM[0] <= extent_mm <= PLAUSIBLE_EXTENT_MM[1]


def run_confidence(peak: float, mass_mm: float, total_mass_mm: float, plausible: bool) -> float:
    """Step 5: peak smoothed probability × the run's share of the total mass × the extent factor
    (1 for a plausible extent, 0.5 otherwise). Grows with ``peak`` and ``mass_mm`` and shrinks
    with ``total_mass_mm``, so bounds of those give bounds of the confidence."""
    return peak * mass_mm / total_mass_mm * (1.0 if plausible else 0.5)


def rival_mass_mm(winner_mass_mm: float, rule: LocateRule) -> float:
    """The mass at which another run counts as a rival of a run of ``winner_mass_mm``
    (``multiple_candidates``); linear, so it also maps a mass bound to a bound."""
    return rule.rival_fraction * winner_mass_mm


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
    runs = candidate_runs(smoothed, rule)
    masses = run_masses_mm(smoothed, runs, slice_thickness_mm)

    flags: list[str] = []
    best: int | None = None
    for index in sorted(range(len(runs)), key=lambda i: -masses[i]):
        if masses[index] < rule.min_mass_mm:
            break
        if reject_centre is not None and reject_centre(centre_slice(run_centre(smoothed, runs[index]))):
            if "anatomy_rejected" not in flags:
                flags.append("anatomy_rejected")
            continue
        best = index
        break
    if best is None:
        return Localization(False, None, None, 0.0, ["no_l3_found", *flags], smoothed)

    first, last = runs[best]
    if any(m >= rival_mass_mm(masses[best], rule) for i, m in enumerate(masses) if i != best):
        flags.append("multiple_candidates")
    if first == 0 or last == len(p) - 1:
        flags.append("l3_at_scan_edge")
    plausible = plausible_extent(runs[best], slice_thickness_mm)
    if not plausible:
        flags.append("implausible_extent")
    confidence = run_confidence(float(smoothed[first : last + 1].max()), float(masses[best]), float(sum(masses)), plausible)
    if confidence < rule.low_confidence:
        flags.append("low_confidence")
    return Localization(True, centre_slice(run_centre(smoothed, runs[best])), (first, last), confidence, flags, smoothed)


def weighty_runs(probabilities: np.ndarray, slice_thickness_mm: float, rule: LocateRule = LocateRule()) -> list[tuple[tuple[int, int], int]]:
    """Every candidate run of :func:`locate_l3` with mass at least ``rule.min_mass_mm``, heaviest
    first, as ``(run, centre slice)``: the answers the rule weighed, for a second opinion to
    choose from (:func:`~l3locator.pipeline.result_from_probabilities`)."""
    smoothed = smooth(probabilities, slice_thickness_mm, rule)
    runs = candidate_runs(smoothed, rule)
    masses = run_masses_mm(smoothed, runs, slice_thickness_mm)
    order = sorted(range(len(runs)), key=lambda i: -masses[i])
    return [(runs[i], centre_slice(run_centre(smoothed, runs[i]))) for i in order if masses[i] >= rule.min_mass_mm]


# --- the rule under bounds ------------------------------------------------------------------------


def smoothing_weights(num_slices: int, slice_thickness_mm: float, rule: LocateRule = LocateRule()) -> np.ndarray:
    """Weight of a raw probability in the smoothed value ``d`` slices away under ``rule``, for
    ``d = 0 .. reach`` (the last non-zero weight; capped at ``num_slices``).

    Measured on :func:`smooth` itself (the smoothing of an impulse), so it stays right if the
    rule's smoothing changes.
    """
    impulse = np.zeros(2 * num_slices + 1)
    impulse[num_slices] = 1.0
    weights = smooth(impulse, slice_thickness_mm, rule)[num_slices:]
    return weights[: int(np.flatnonzero(weights).max()) + 1]


def smoothing_reach(num_slices: int, slice_thickness_mm: float, rule: LocateRule = LocateRule()) -> int:
    """How many slices away a raw probability still changes a smoothed one under ``rule``."""
    return len(smoothing_weights(num_slices, slice_thickness_mm, rule)) - 1


def probability_bounds(probabilities: np.ndarray, exact: np.ndarray, logit_error: float) -> np.ndarray:
    """Per slice, how far the true probability may lie from ``probabilities``.

    Slices marked ``exact`` are known (bound 0); the others are off by at most ``logit_error``
    in log-odds, which bounds the probability exactly.
    """
    p = np.clip(probabilities, 1e-12, 1 - 1e-12)
    logit = np.log(p / (1 - p))
    low, high = 1 / (1 + np.exp(-(logit - logit_error))), 1 / (1 + np.exp(-(logit + logit_error)))
    return np.where(exact, 0.0, np.maximum(p - low, high - p))


def _could_cross(value: float, slack: float, limit: float) -> bool:
    """Whether ``value``, known to within ``slack``, could lie on either side of ``limit``."""
    return abs(value - limit) <= slack


def uncertain_slices(probabilities: np.ndarray, bounds: np.ndarray, slice_thickness_mm: float, rule: LocateRule) -> np.ndarray:
    """Bool mask of the slices whose smoothed value could change the answer of :func:`locate_l3`
    for some curve within ``bounds`` of ``probabilities`` (found, slice, range and flags; the
    confidence itself may move by the bounds). All False: the answer is certain.

    A slice whose smoothed value is within its bound of the threshold is marked alone; a run
    whose mass ranking, centre rounding, ``min_mass_mm``, rival or confidence comparison is
    uncertain is marked whole. With the runs certain, so are the flags that only depend on the
    winning run's slices (``l3_at_scan_edge``, ``implausible_extent``); the anatomical check only
    removes runs by their centres, which are then certain too.
    """
    smoothed = smooth(probabilities, slice_thickness_mm, rule)
    slack = smooth(bounds, slice_thickness_mm, rule)  # linear, non-negative weights: bounds map to bounds
    uncertain = np.abs(smoothed - rule.threshold) <= slack  # a slice could change sides of the threshold
    runs = candidate_runs(smoothed, rule)
    masses = run_masses_mm(smoothed, runs, slice_thickness_mm)
    mass_slack = run_masses_mm(slack, runs, slice_thickness_mm)
    total, total_slack = float(sum(masses)), float(sum(mass_slack))

    def mark(*indices: int) -> None:
        for i in indices:
            uncertain[runs[i][0] : runs[i][1] + 1] = True

    for i, (run, mass, error) in enumerate(zip(runs, masses, mass_slack)):
        if _could_cross(mass, error, rule.min_mass_mm):
            mark(i)
        for j in (j for j in range(len(runs)) if j != i):
            heavier_could_flip = _could_cross(mass, error + mass_slack[j], masses[j])
            rival_could_flip = _could_cross(masses[j], mass_slack[j] + rival_mass_mm(error, rule), rival_mass_mm(mass, rule))
            if heavier_could_flip or rival_could_flip:
                mark(i, j)  # which run wins, or multiple_candidates, could change
        first, last = run
        weights, weight_slack = smoothed[first : last + 1], slack[first : last + 1]
        centre = run_centre(smoothed, run)
        shift = float(np.sum(np.abs(np.arange(first, last + 1) - centre) * weight_slack)) / max(float(weights.sum() - weight_slack.sum()), 1e-12)
        if centre_slice(centre - shift) != centre_slice(centre + shift):
            mark(i)  # the centre could round to another slice
        plausible = plausible_extent(run, slice_thickness_mm)
        low = run_confidence(float((weights - weight_slack).max()), mass - error, total + total_slack, plausible)
        high = run_confidence(float((weights + weight_slack).max()), mass + error, max(total - total_slack, 1e-12), plausible)
        if low < rule.low_confidence <= high:
            mark(i)  # low_confidence could flip (were this run the winner)
    return uncertain
