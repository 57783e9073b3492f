"""Coarse-to-fine scoring: the L3 answer of scoring every slice, from a fraction of the slices.

The locate rule (:mod:`l3locator.locate`) only looks at the runs of slices whose *smoothed*
probability reaches the threshold, and a smoothed value depends on the raw probabilities within
the smoothing's reach ``R`` slices (the Gaussian's truncation radius). So only the slices near
L3-like evidence need a score; the rest only need to be shown to hold none.

Plan (distances along the axial axis):

1. **Coarse**: score every ``step``-th slice, ``step = floor(coarse_step_mm / slice thickness)``,
   and the last slice. The default 8 mm samples an L3 body (25–40 mm tall) at least 3 times.
2. **Refine**, repeated until nothing is missing. Fill unscored slices by linear interpolation
   between the nearest scored ones, apply the locate rule's smoothing, and then require:

   a. for every candidate run ``[first, last]`` of the filled curve, every slice of
      ``[first - 1 - R, last + 1 + R]`` scored (so the run's smoothed values and the values
      just outside it are those of the exhaustive curve);
   b. for every scored slice whose probability is at least ``suspicion``, every slice less
      than ``step`` away scored (evidence between coarse samples is never left to interpolation).

Guarantee: every candidate run of the final curve is a run of the exhaustive curve with the same
smoothed values, so the same L3 slice, range and mass. Every unscored slice lies between two
scored slices fewer than ``step`` slices apart, both with probability below ``suspicion``; the
answer can differ from exhaustive scoring only if an L3-like run hides entirely in such a gap,
and the confidence (which sums the masses of all runs) only by such a hidden run's mass.
Tiny float differences remain from batching and from the chosen precision
(:mod:`l3locator.inference`).

When sampling would not save a quarter of the work (short scans, thick slices) every slice is
scored, in order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .inference import SliceClassifier
from .locate import LocateRule, find_runs, locate_l3
from .modelfile import L3Model
from .preprocessing import assemble_inputs, neighbor_offset_slices, preprocess_slices
from .scoring import Cancelled, ProgressCallback
from .volume import CTVolume

#: Tallest plausible L3 run (mm), for estimating what sampling would cost.
L3_RUN_MM = 40.0


@dataclass(frozen=True)
class SamplingPlan:
    """Settings of coarse-to-fine scoring (mm along the axial axis, probabilities).

    Attributes:
        coarse_step_mm: distance between coarse samples; at most a third of the shortest L3
            (25 mm) so L3 is sampled at least 3 times.
        suspicion: a scored slice with at least this probability has its unscored neighbours
            (up to one coarse step away) scored too. Below the rule's threshold, so a run is
            looked for before it shows in the interpolated curve.
        min_saving: score every slice unless sampling is expected to skip at least this
            fraction of them.
    """

    coarse_step_mm: float = 8.0
    suspicion: float = 0.25
    min_saving: float = 0.25

    def __post_init__(self) -> None:
        if self.coarse_step_mm <= 0:
            raise ValueError("coarse_step_mm must be positive")
        if not 0.0 < self.suspicion <= 1.0:
            raise ValueError("suspicion must be in (0, 1]")
        if not 0.0 <= self.min_saving < 1.0:
            raise ValueError("min_saving must be in [0, 1)")


@dataclass
class ScoredCurve:
    """Per-slice L3 probabilities, some measured and the rest interpolated.

    Attributes:
        probabilities: float64 ``[num_slices]``, index = slice index. Scored slices hold the
            model's probability; unscored slices the linear interpolation between the nearest
            scored slices on either side (all below ``SamplingPlan.suspicion`` there), so the
            curve can be plotted and located as it is.
        scored: bool ``[num_slices]``, True where the model scored the slice.
        precision: ``"fp32"`` or ``"bf16"``, as used.
        strategy: ``"coarse-to-fine"`` or ``"every-slice"``.
    """

    probabilities: np.ndarray
    scored: np.ndarray
    precision: str
    strategy: str

    @property
    def complete(self) -> bool:
        """True when every slice was scored."""
        return bool(self.scored.all())

    def scored_indices(self) -> list[int]:
        """Indices of the scored slices, ascending."""
        return np.flatnonzero(self.scored).tolist()


def coarse_step_slices(slice_thickness_mm: float, plan: SamplingPlan = SamplingPlan()) -> int:
    """Coarse sampling step in slices (at least 1)."""
    return max(1, int(np.floor(plan.coarse_step_mm / slice_thickness_mm + 1e-9)))


def smoothing_reach(num_slices: int, slice_thickness_mm: float, rule: LocateRule = LocateRule()) -> int:
    """How many slices away a raw probability still changes a smoothed one under ``rule``.

    Measured on the rule itself (the smoothing of an impulse by :func:`locate_l3`), so it stays
    right if the rule's smoothing changes. Capped at ``num_slices``.
    """
    impulse = np.zeros(2 * num_slices + 1)
    impulse[num_slices] = 1.0
    smoothed = locate_l3(impulse, slice_thickness_mm, rule).smoothed
    return int(np.abs(np.flatnonzero(smoothed) - num_slices).max())


def fill_unscored(probabilities: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """``probabilities`` with unscored slices replaced by linear interpolation (ends: nearest)."""
    known = np.flatnonzero(scored)
    return np.interp(np.arange(len(probabilities)), known, probabilities[known])


def missing_slices(
    probabilities: np.ndarray,
    scored: np.ndarray,
    slice_thickness_mm: float,
    step: int,
    reach: int,
    rule: LocateRule,
    suspicion: float,
) -> np.ndarray:
    """Unscored slices that the refinement rules (a) and (b) of the module docstring require."""
    n = len(scored)
    wanted = np.zeros(n, dtype=bool)
    smoothed = locate_l3(fill_unscored(probabilities, scored), slice_thickness_mm, rule).smoothed
    for first, last in find_runs(smoothed >= rule.threshold):
        wanted[max(0, first - 1 - reach) : last + 2 + reach] = True
    for index in np.flatnonzero(scored & (probabilities >= suspicion)):
        wanted[max(0, index - step + 1) : index + step] = True
    return np.flatnonzero(wanted & ~scored)


class _SliceCache:
    """Preprocessed slices (steps 1–4 of :mod:`l3locator.preprocessing`), made on first use."""

    def __init__(self, volume: CTVolume, model: L3Model) -> None:
        self.stack = volume.axial_stack()
        self.config = model.preprocessing
        size = self.config.input_size
        self.images = torch.empty((len(self.stack), size, size), dtype=torch.float32)
        self.ready = np.zeros(len(self.stack), dtype=bool)

    def ensure(self, indices: np.ndarray) -> None:
        todo = np.unique(indices)
        todo = todo[~self.ready[todo]]
        if todo.size:
            self.images[torch.as_tensor(todo)] = preprocess_slices(self.stack[todo], self.config)
            self.ready[todo] = True


def score_coarse_to_fine(
    model: L3Model,
    volume: CTVolume,
    *,
    rule: LocateRule = LocateRule(),
    plan: SamplingPlan = SamplingPlan(),
    precision: str = "auto",
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> ScoredCurve:
    """Score the slices that decide where ``rule`` puts L3 (see the module docstring).

    Args:
        rule: the locate rule the answer will be computed with (its smoothing and threshold
            decide which slices are needed).
        plan: sampling settings.
        precision: ``"auto"``, ``"fp32"`` or ``"bf16"`` (:mod:`l3locator.inference`).
        progress: called as ``progress(done, planned)`` after each batch; ``planned`` grows when
            a refinement round adds slices, and the last call has ``done == planned``.
        should_cancel: polled between batches; returning True raises :class:`Cancelled`.
    """
    n, thickness = volume.num_slices, volume.slice_thickness
    classify = SliceClassifier(model, device, precision)
    cache = _SliceCache(volume, model)
    config = model.preprocessing
    offset = neighbor_offset_slices(config, thickness) * volume.superior_step
    probabilities = np.zeros(n, dtype=np.float64)
    scored = np.zeros(n, dtype=bool)

    def score(indices: np.ndarray, planned: int) -> None:
        for start in range(0, len(indices), batch_size):
            if should_cancel is not None and should_cancel():
                raise Cancelled("cancelled by the user")
            batch = indices[start : start + batch_size]
            needed = batch if config.channel_mode == "repeat" else np.concatenate((batch, np.clip(batch - offset, 0, n - 1), np.clip(batch + offset, 0, n - 1)))
            cache.ensure(needed)
            probabilities[batch] = classify(assemble_inputs(cache.images, batch, config, thickness, volume.superior_step))
            scored[batch] = True
            if progress is not None:
                progress(int(scored.sum()), planned)

    step = coarse_step_slices(thickness, plan)
    reach = smoothing_reach(n, thickness, rule)
    expected = n / step + L3_RUN_MM / thickness + 2 * reach + 2
    if step < 2 or expected > (1.0 - plan.min_saving) * n:
        score(np.arange(n), n)
        return ScoredCurve(probabilities, scored, classify.precision, "every-slice")

    coarse = np.unique(np.append(np.arange(0, n, step), n - 1))
    score(coarse, len(coarse))
    while True:
        missing = missing_slices(probabilities, scored, thickness, step, reach, rule, plan.suspicion)
        if missing.size == 0:
            break
        score(missing, int(scored.sum()) + len(missing))
    return ScoredCurve(fill_unscored(probabilities, scored), scored, classify.precision, "coarse-to-fine")
