"""Coarse-to-fine scoring: the L3 answer of scoring every slice, from a fraction of the slices.

The locate rule (:mod:`l3locator.locate`) only looks at the runs of slices whose *smoothed*
probability reaches the threshold, and a smoothed value depends on the raw probabilities within
the smoothing's reach ``R`` slices (the Gaussian's truncation radius). So only the slices near
L3-like evidence need a score; the rest only need to be shown to hold none.

Plan (distances along the axial axis):

1. **Coarse**: score every ``step``-th slice, ``step = floor(coarse_step_mm / slice thickness)``,
   and the last slice. The default 12 mm samples an L3 body (25–40 mm tall) at least twice (a
   2.5D model's run of high probability is taller still: its inputs see L3 from slices around it).
2. **Refine**, repeated until nothing is missing. Fill unscored slices by linear interpolation
   between the nearest scored ones, apply the locate rule's smoothing, and then require:

   a. for every candidate run ``[first, last]`` of the filled curve, every slice of its
      *window* ``[first - 1 - R, last + 1 + R]`` scored (so the run's smoothed values and the
      values just outside it are those of the exhaustive curve);
   b. for every scored slice whose probability is at least ``suspicion``, both its neighbours
      scored: repeated, this follows the evidence from a coarse sample out to the first slices
      below ``suspicion`` each way (evidence between samples is never left to interpolation).

Guarantee: every candidate run of the final curve is a run of the exhaustive curve with the same
smoothed values, so the same L3 slice, range and mass. Every unscored slice lies between two
scored slices at most ``step`` slices apart, both with probability below ``suspicion``; the
answer can differ from exhaustive scoring only if an L3-like run hides entirely in such a gap,
and the confidence (which sums the masses of all runs) only by such a hidden run's mass.

Precision (:mod:`l3locator.engine`): ``"mixed"`` screens in bfloat16 (2–3x faster on CPUs
with native bfloat16). It then asks whether float32 could give another answer: with every
bfloat16 log-odds off by at most ``bf16_logit_error``, each probability lies in a known interval,
and (the rule being linear smoothing, sums and ratios) so does every quantity the answer is made
of: each smoothed value's side of the threshold, the runs' masses and their order, the centre's
rounding, and the comparisons behind the flags (:func:`~l3locator.locate.uncertain_slices`, the
locate rule under bounds). If none can change, the bfloat16 answer is the float32 answer and no
float32 pass is run. Otherwise run-window
slices within the smoothing's reach of an uncertain value whose bfloat16 probability is not
saturated (between ``fp32_band`` and ``1 - fp32_band``) are re-scored in float32, those that
can move an uncertain value most first (:func:`influence`), in rounds that double the float32
count (2, 2, 4, 8... up to a batch; one or two scores often settle it), and the
refinement repeats until the windows are stable and the answer is certain (or nothing is left
to re-score). The bound is empirical: bfloat16 moved the log-odds by 0.08–0.18 with the
shipped ResNet18 on 28 scans; bfloat16 alone (no check) once changed an L3 range there with a
ResNet18 trained for the measurement, ``"mixed"`` never (``bench/results/speed.md`` checks the
answers on every run).
``"auto"`` is ``"mixed"`` where bfloat16 is native on a CPU, else ``"fp32"``; ``"bf16"`` skips the
float32 pass (measurement only). Within float32, batching and memory layout change
probabilities by about 1e-6.

When sampling could not save a quarter of the work even on a scan without any L3-like evidence
(the coarse samples and one run's window alone would reach that much: very short scans, slices
thicker than half the coarse step) every slice is scored, in order, in float32 (in bfloat16 only
when ``"bf16"`` is asked for). Whether L3 is there is not assumed up front: until 2026-12 a tall
L3 run was, which sent thin-sliced short scans to every slice in float32; on the real spine
crop in ../shared resampled to 500 slices that cost 5.6 s where sampling, which found little
evidence, took 1.4 s for the same answer (``bench/results/speed.md``). Where the evidence does
cover the scan, the switch below bounds the cost.

**Never slower than scoring every slice**: on an uncertain profile (a model that sees L3-like
evidence along much of the scan) the refinement could score most slices in bfloat16 and then
re-score many in float32, costing more than one float32 pass. So before each refinement round
the work still ahead is estimated from what is scored so far (:func:`expected_cost`, in float32
slice evaluations, a bfloat16 one counting ``bf16_cost``), and when it would not save
``min_saving`` of scoring every remaining slice in float32, the rounds stop and every slice not
yet scored in float32 is scored in float32, in order, in full batches (in bfloat16 when
``"bf16"`` was asked for): the exhaustive answer at the cost of one pass plus the coarse
samples. The curve's ``strategy`` then reads ``"switched-to-every-slice"``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from .engine import ProgressCallback, ScanSlices, SliceClassifier, default_batch_size, pick_device, resolve_precision, score_slices
from .locate import LocateRule, candidate_runs, probability_bounds, smooth, smoothing_weights, uncertain_slices
from .modelfile import L3Model
from .volume import CTVolume

@dataclass(frozen=True)
class SamplingPlan:
    """Settings of coarse-to-fine scoring (mm along the axial axis, probabilities).

    Attributes:
        coarse_step_mm: distance between coarse samples; at most half the shortest L3 (25 mm)
            so L3 is sampled at least twice, and a sample at its edge (``suspicion``) has its
            gaps scored. Below the slice thickness: every slice. (On the speed benchmark's 29
            scans 8 mm scored 21 % more slices than 12 mm, with the same answers.)
        suspicion: a scored slice with at least this probability has its neighbours scored
            too, and theirs, out to the first slices below it. Below the rule's threshold, so a
            run is looked for before it shows in the interpolated curve.
        min_saving: score every slice unless sampling is expected to skip at least this
            fraction of them.
        fp32_band: with precision ``"mixed"``, run-window slices whose bfloat16 probability
            lies in ``[fp32_band, 1 - fp32_band]`` are re-scored in float32 when the answer is
            not certain.
        bf16_logit_error: assumed bound on how far bfloat16 moves a slice's L3 log-odds from
            float32's (measured: at most 0.18 on 28 scans with a ResNet18; with the shipped
            ResNet50 at most 0.22 over every slice of the five real scans in ../shared and three
            phantoms, 1,074 slices; its ±20 mm predecessor reached 0.28); 0 trusts bfloat16 fully.
        bf16_cost: time of one bfloat16 slice evaluation over one float32 evaluation, for the
            switch to every slice (measured on a 2-core EPYC with native bfloat16: 0.49 for a
            ResNet50 at 224 px, 0.58 for a ResNet18 at 128 px, 0.54 for it on one thread).
    """

    coarse_step_mm: float = 12.0
    suspicion: float = 0.25
    min_saving: float = 0.25
    fp32_band: float = 0.01
    bf16_logit_error: float = 0.3
    bf16_cost: float = 0.55

    def __post_init__(self) -> None:
        if self.coarse_step_mm <= 0:
            raise ValueError("coarse_step_mm must be positive")
        if not 0.0 < self.suspicion <= 1.0:
            raise ValueError("suspicion must be in (0, 1]")
        if not 0.0 <= self.min_saving < 1.0:
            raise ValueError("min_saving must be in [0, 1)")
        if not 0.0 <= self.fp32_band < 0.5:
            raise ValueError("fp32_band must be in [0, 0.5)")
        if self.bf16_logit_error < 0:
            raise ValueError("bf16_logit_error must not be negative")
        if not 0.0 < self.bf16_cost <= 1.0:
            raise ValueError("bf16_cost must be in (0, 1]")


@dataclass
class ScoredCurve:
    """Per-slice L3 probabilities, some measured and the rest interpolated.

    Attributes:
        probabilities: float64 ``[num_slices]``, index = slice index. Scored slices hold the
            model's probability (float32's where ``rescored``); unscored slices the linear
            interpolation between the nearest scored slices on either side (all below
            ``SamplingPlan.suspicion`` there), so the curve can be plotted and located as it is.
        scored: bool ``[num_slices]``, True where the model scored the slice.
        rescored: bool ``[num_slices]``, True where a bfloat16 score was replaced by float32's.
        precision: ``"fp32"``, ``"bf16"`` or ``"mixed"``, as used.
        strategy: ``"coarse-to-fine"``, ``"every-slice"`` (chosen up front: sampling could not
            save enough) or ``"switched-to-every-slice"`` (the samples showed an uncertain
            profile; see the module docstring).
    """

    probabilities: np.ndarray
    scored: np.ndarray
    rescored: np.ndarray
    precision: str
    strategy: str

    @property
    def complete(self) -> bool:
        """True when every slice was scored."""
        return bool(self.scored.all())

    def scored_indices(self) -> list[int]:
        """Indices of the scored slices, ascending."""
        return np.flatnonzero(self.scored).tolist()

    def summary(self) -> dict[str, object]:
        """JSON-ready description: strategy, precision and slice counts."""
        return {"strategy": self.strategy, "precision": self.precision, "slices_scored": int(self.scored.sum()),
                "slices_rescored_fp32": int(self.rescored.sum())}


def coarse_step_slices(slice_thickness_mm: float, plan: SamplingPlan = SamplingPlan()) -> int:
    """Coarse sampling step in slices (at least 1)."""
    return max(1, int(np.floor(plan.coarse_step_mm / slice_thickness_mm + 1e-9)))


def influence(uncertain: np.ndarray, bounds: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Per raw slice, the most its bound can move one ``uncertain`` smoothed value:
    ``bounds[j] * max(weights[|i - j|] for uncertain i)`` (0 beyond the smoothing's reach)."""
    n = len(uncertain)
    nearest = np.zeros(n)
    for d, weight in enumerate(weights[:n]):
        near = uncertain.copy()
        near[d:] |= uncertain[: n - d]
        near[: n - d] |= uncertain[d:]
        nearest = np.maximum(nearest, np.where(near, weight, 0.0))
    return nearest * bounds


def fill_unscored(probabilities: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """``probabilities`` with unscored slices replaced by linear interpolation (ends: nearest)."""
    known = np.flatnonzero(scored)
    return np.interp(np.arange(len(probabilities)), known, probabilities[known])


def run_windows(probabilities: np.ndarray, scored: np.ndarray, slice_thickness_mm: float, reach: int, rule: LocateRule) -> np.ndarray:
    """Rule (a): bool mask of the slices within ``reach + 1`` of a candidate run of the filled curve."""
    windows = np.zeros(len(scored), dtype=bool)
    for first, last in candidate_runs(smooth(fill_unscored(probabilities, scored), slice_thickness_mm, rule), rule):
        windows[max(0, first - 1 - reach) : last + 2 + reach] = True
    return windows


def suspicious_neighbours(probabilities: np.ndarray, scored: np.ndarray, suspicion: float) -> np.ndarray:
    """Rule (b): bool mask of the slices next to a scored slice with ``p >= suspicion``.

    Applied until nothing is missing, it walks out from each suspicious slice, both ways, to the
    first slices below ``suspicion``.
    """
    suspicious = scored & (probabilities >= suspicion)
    near = np.zeros(len(scored), dtype=bool)
    near[1:] |= suspicious[:-1]
    near[:-1] |= suspicious[1:]
    return near


def expected_walk(probabilities: np.ndarray, scored: np.ndarray, suspicion: float) -> np.ndarray:
    """Bool mask of the unscored slices rule (b) is expected to reach from the scored ones: the
    whole gap between two scored slices with ``p >= suspicion``, and the half of a gap next to
    its one suspicious end (the walk stops at the first slice below ``suspicion``)."""
    expected = np.zeros(len(scored), dtype=bool)
    known = np.flatnonzero(scored)
    suspicious = probabilities[known] >= suspicion
    for (before, after), (low, high) in zip(zip(known[:-1], known[1:]), zip(suspicious[:-1], suspicious[1:])):
        if after - before < 2 or not (low or high):
            continue
        middle = (before + after + 1) // 2
        expected[before + 1 if low else middle : after if high else middle] = True
    return expected


def expected_cost(probabilities: np.ndarray, scored: np.ndarray, rescored: np.ndarray, windows: np.ndarray, mixed: bool,
                  slice_thickness_mm: float, weights: np.ndarray, rule: LocateRule, plan: SamplingPlan) -> float:
    """Expected network cost of finishing the refinement from here, in slice evaluations of the
    finishing precision (float32, or bfloat16 when only bfloat16 is used).

    Slices still to screen: the unscored ones in the candidate run windows and those rule (b)
    is expected to reach (:func:`expected_walk`), each costing ``plan.bf16_cost`` when screened
    in bfloat16 (``mixed``). Float32 re-scores (``mixed``): every screened or expected slice
    not yet re-scored whose filled probability is unsaturated and within the smoothing's reach
    of a smoothed value the bfloat16 bounds leave uncertain, the most the certification may
    need.
    """
    to_screen = (windows | expected_walk(probabilities, scored, plan.suspicion)) & ~scored
    if not mixed:
        return float(to_screen.sum())
    filled = fill_unscored(probabilities, scored)
    bounds = fill_unscored(probability_bounds(probabilities, rescored, plan.bf16_logit_error), scored)
    uncertain = uncertain_slices(filled, bounds, slice_thickness_mm, rule)
    band = (filled >= plan.fp32_band) & (filled <= 1.0 - plan.fp32_band)
    to_rescore = (scored | to_screen) & band & ~rescored & (influence(uncertain, bounds, weights) > 0)
    return plan.bf16_cost * float(to_screen.sum()) + float(to_rescore.sum())


def score_coarse_to_fine(
    model: L3Model,
    volume: CTVolume,
    *,
    rule: LocateRule = LocateRule(),
    plan: SamplingPlan = SamplingPlan(),
    precision: str = "auto",
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> ScoredCurve:
    """Score the slices that decide where ``rule`` puts L3 (see the module docstring).

    Args:
        rule: the locate rule the answer will be computed with (its smoothing and threshold
            decide which slices are needed).
        plan: sampling settings.
        precision: ``"auto"``, ``"fp32"``, ``"mixed"`` or ``"bf16"`` (module docstring).
        batch_size: slices per network call; None: :func:`~l3locator.engine.default_batch_size`
            for each precision.
        progress: called as ``progress(done, planned)`` after each batch, counting network
            evaluations; ``planned`` grows when a round adds slices, and the last call has
            ``done == planned``.
        should_cancel: polled between batches; returning True raises
            :class:`~l3locator.engine.Cancelled`.
    """
    n, thickness = volume.num_slices, volume.slice_thickness
    dev = pick_device(device)
    mode = resolve_precision(precision, dev)
    step = coarse_step_slices(thickness, plan)
    weights = smoothing_weights(n, thickness, rule)
    reach = len(weights) - 1
    every_slice = step < 2 or n / step + 2 * reach + 2 > (1.0 - plan.min_saving) * n
    if every_slice and mode == "mixed":
        mode = "fp32"
    screen = SliceClassifier(model, dev, "fp32" if mode == "fp32" else "bf16")
    exact = screen if mode != "mixed" else SliceClassifier(model, dev, "fp32")
    slices = ScanSlices.of_volume(volume, model.preprocessing)
    probabilities = np.zeros(n, dtype=np.float64)
    scored = np.zeros(n, dtype=bool)
    rescored = np.zeros(n, dtype=bool)
    done = 0

    def score(indices: np.ndarray, classify: SliceClassifier) -> None:
        nonlocal done
        before = done
        report = None if progress is None else (lambda count, total: progress(before + count, before + total))
        probabilities[indices] = score_slices(classify, slices, indices, batch_size=batch_size, progress=report, should_cancel=should_cancel)
        done += len(indices)

    if every_slice:
        score(np.arange(n), screen)
        scored[:] = True
        return ScoredCurve(probabilities, scored, rescored, mode, "every-slice")

    coarse = np.unique(np.append(np.arange(0, n, step), n - 1))
    score(coarse, screen)
    scored[coarse] = True
    while True:
        windows = run_windows(probabilities, scored, thickness, reach, rule)
        missing = np.flatnonzero((windows | suspicious_neighbours(probabilities, scored, plan.suspicion)) & ~scored)
        # slices not yet scored in the precision the answer ends in: what scoring every slice would still cost
        unfinished = ~rescored if mode == "mixed" else ~scored
        if (missing.size or mode == "mixed") and expected_cost(probabilities, scored, rescored, windows, mode == "mixed", thickness, weights,
                                                              rule, plan) > (1.0 - plan.min_saving) * unfinished.sum():
            todo = np.flatnonzero(unfinished)
            score(todo, exact)
            rescored[todo[scored[todo]]] = True
            scored[:] = True
            return ScoredCurve(probabilities, scored, rescored, mode, "switched-to-every-slice")
        if missing.size:
            score(missing, screen)
            scored[missing] = True
            continue
        if mode != "mixed":
            break
        # an unscored slice is interpolated from scored neighbours, so its bound is theirs, interpolated
        bounds = fill_unscored(probability_bounds(probabilities, rescored, plan.bf16_logit_error), scored)
        uncertain = uncertain_slices(fill_unscored(probabilities, scored), bounds, thickness, rule)
        if not uncertain.any():
            break  # float32 would give the same answer
        band = (probabilities >= plan.fp32_band) & (probabilities <= 1.0 - plan.fp32_band)
        weight = influence(uncertain, bounds, weights)
        fragile = np.flatnonzero(windows & band & ~rescored & (weight > 0))
        if fragile.size == 0:
            break
        # the slices that can move an uncertain value most first; each round re-scores as many
        # as all rounds before it (at least 2, at most a batch): a few float32 scores often settle it
        round_size = min(max(2, int(rescored.sum())), batch_size or default_batch_size(model.preprocessing.input_size, dev, "fp32"))
        fragile = fragile[np.argsort(-weight[fragile], kind="stable")][:round_size]
        score(np.sort(fragile), exact)
        rescored[fragile] = True
    return ScoredCurve(fill_unscored(probabilities, scored), scored, rescored, mode, "coarse-to-fine")
