"""Find L3 in one scan: the job every shell (CLI, batch script, Slicer module) runs."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

from .anatomy import has_lungs
from .engine import ProgressCallback, score_volume
from .fast_scoring import score_coarse_to_fine
from .level_count import LevelCount, count_levels, disagrees, lowered_confidence
from .locate import LocateRule, locate_l3, weighty_runs
from .modelfile import L3Model, load_model
from .reading import check_volume, load_ct
from .reading.checks import in_plane_extent_mm
from .volume import AXIS_NAMES, CTVolume

#: An axial field of view narrower than this (mm, either side) is a crop, not a body: the models are
#: trained on 330-500 mm, and on the real 110 mm spine crop in ../shared no model tried here could
#: place L3 (bench/results/ablation_crops.md).
SMALL_FIELD_OF_VIEW_MM = 200.0


@dataclass
class L3Result:
    """The answer for one scan, as the CLI's ``--json`` prints it (see :meth:`to_dict`).

    Slice indices are 0-based along the axial axis (``slice_axis``, normally ``"k"``); ranges
    are inclusive; positions are RAS millimetres.
    """

    input: str
    l3_found: bool
    l3_slice_index: int | None
    l3_slice_range: tuple[int, int] | None
    l3_position_ras: list[float] | None
    confidence: float
    flags: list[str]
    slice_probabilities: list[float]
    model: str
    seconds: float
    slice_axis: str = "k"
    num_slices: int = 0
    slice_thickness_mm: float = 0.0
    scored_slices: list[int] | None = None
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict with the contract keys (``input``, ``l3_found``, ``l3_slice_index``,
        ``l3_slice_range``, ``l3_position_ras``, ``confidence``, ``flags``,
        ``slice_probabilities``, ``model``, ``seconds``) and a few more, among them ``warnings``:
        what the reader and the input checks noticed about the scan (one sentence each)."""
        return {
            "input": self.input,
            "l3_found": self.l3_found,
            "l3_slice_index": self.l3_slice_index,
            "l3_slice_range": list(self.l3_slice_range) if self.l3_slice_range else None,
            "l3_position_ras": self.l3_position_ras,
            "confidence": round(self.confidence, 4),
            "flags": list(self.flags),
            "slice_probabilities": [round(float(p), 5) for p in self.slice_probabilities],
            "scored_slices": self.scored_slices,
            "model": self.model,
            "seconds": round(self.seconds, 3),
            "slice_axis": self.slice_axis,
            "num_slices": self.num_slices,
            "slice_thickness_mm": round(self.slice_thickness_mm, 4),
            "warnings": list(self.warnings),
            **self.extra,
        }


def result_from_probabilities(
    volume: CTVolume,
    probabilities: np.ndarray,
    *,
    model_name: str,
    seconds: float,
    rule: LocateRule = LocateRule(),
    scored_slices: list[int] | None = None,
    anatomy_check: bool = True,
    level_check: bool = True,
    input_name: str | None = None,
) -> L3Result:
    """Turn per-slice probabilities of ``volume`` into an :class:`L3Result` (see ``locate``).

    ``anatomy_check``: reject candidates whose centre slice shows lungs (:mod:`l3locator.anatomy`).
    ``level_check``: when L3 is found, count the vertebrae (:func:`check_level`).
    A slice narrower than :data:`SMALL_FIELD_OF_VIEW_MM` is flagged ``small_field_of_view``, found or
    not, and an answer's confidence is lowered as for a level disagreement (:func:`flag_small_field_of_view`).
    Slices without an image (one value throughout) are flagged ``blank_slices`` and named in the
    warnings (:func:`flag_blank_slices`).
    The result's ``input`` is ``input_name`` (default: ``volume.source``); its ``warnings`` are
    ``volume.metadata["warnings"]`` (what the reader and :func:`check_volume` noticed).
    """
    stack = volume.axial_stack()
    reject = (lambda index: has_lungs(stack[index])) if anatomy_check else None
    found = locate_l3(probabilities, volume.slice_thickness, rule, reject_centre=reject)
    position = volume.slice_center_ras(found.slice_index).round(3).tolist() if found.l3_found else None
    result = L3Result(
        input=volume.source if input_name is None else input_name,
        l3_found=found.l3_found,
        l3_slice_index=found.slice_index,
        l3_slice_range=found.slice_range,
        l3_position_ras=position,
        confidence=found.confidence,
        flags=found.flags,
        slice_probabilities=[float(p) for p in probabilities],
        model=model_name,
        seconds=seconds,
        slice_axis=AXIS_NAMES[volume.axial_axis],
        num_slices=volume.num_slices,
        slice_thickness_mm=volume.slice_thickness,
        scored_slices=scored_slices,
        warnings=[str(warning) for warning in volume.metadata.get("warnings", [])],
    )
    result.extra["level_count"] = None
    if min(in_plane_extent_mm(volume)) < SMALL_FIELD_OF_VIEW_MM:
        flag_small_field_of_view(result, rule)
    blank = volume.blank_slices()
    if blank.size:
        flag_blank_slices(result, blank)
    if level_check and result.l3_found:
        check_level(result, volume, count_levels(volume), probabilities, rule, reject)
    return result


def flag_blank_slices(result: L3Result, blank: np.ndarray) -> None:
    """Flag ``result`` (``blank_slices``), in place, and name the blank slices (indices ``blank``,
    :meth:`CTVolume.blank_slices`) in its warnings: the network saw no image there, so L3 may lie
    there unseen (a "no L3" is not a negative) or be cut off beside them."""
    result.flags.append("blank_slices")
    runs = np.split(blank, np.flatnonzero(np.diff(blank) > 1) + 1)
    spans = ", ".join(f"{run[0]}" if len(run) == 1 else f"{run[0]}-{run[-1]}" for run in runs)
    result.warnings.append(f"{len(blank)} of {result.num_slices} slices hold no image (one value throughout): slices {spans}")


def flag_small_field_of_view(result: L3Result, rule: LocateRule) -> None:
    """Flag ``result`` as coming from a crop (``small_field_of_view``), in place: whether L3 was found
    or not, neither is reliable there. A found answer's confidence is halved (at most 0.3, as for a
    level disagreement) and ``low_confidence`` added below ``rule.low_confidence``."""
    result.flags.append("small_field_of_view")
    if not result.l3_found:
        return
    result.confidence = lowered_confidence(result.confidence)
    if result.confidence < rule.low_confidence and "low_confidence" not in result.flags:
        result.flags.append("low_confidence")


def check_level(result: L3Result, volume: CTVolume, count: LevelCount, probabilities: np.ndarray, rule: LocateRule,
                reject_centre: Callable[[int], bool] | None = None) -> None:
    """Hold ``result`` (L3 found) against the vertebra count ``count`` of ``volume``, in place.

    ``extra["level_count"]`` records the count. Where the count names an L3 range (both counts
    agreeing, or the only count the scan allows) and the answer lies outside it by more than a
    quarter vertebra (:func:`~l3locator.level_count.disagrees`): flag ``level_disagreement`` and
    halve the confidence (at most 0.3). Where both counts agree and one of the network's
    other candidate runs (:func:`~l3locator.locate.weighty_runs`, passing ``reject_centre``) is
    centred inside the counted range, the network saw L3 there as well and only weighed it
    less: the answer moves to the counted range (slice: its middle; flag
    ``level_count_answer``; the run flags ``implausible_extent`` and ``l3_at_scan_edge`` are
    re-judged for that range). Otherwise the answer slice is kept. ``low_confidence`` is added
    when the confidence falls below ``rule.low_confidence``.
    """
    result.extra["level_count"] = count.to_dict()
    thickness = volume.slice_thickness
    if not disagrees(count, result.l3_slice_index, thickness):
        return
    result.confidence = lowered_confidence(result.confidence)
    result.flags.append("level_disagreement")
    seen_there = count.l3_range is not None and any(not disagrees(count, centre, thickness) and not (reject_centre is not None and reject_centre(centre))
                     for _, centre in weighty_runs(probabilities, thickness, rule))
    if seen_there:
        first, last = count.l3_range
        result.l3_slice_index = int(round((first + last) / 2))
        result.l3_slice_range = (first, last)
        result.l3_position_ras = volume.slice_center_ras(result.l3_slice_index).round(3).tolist()
        result.flags = [flag for flag in result.flags if flag not in ("implausible_extent", "l3_at_scan_edge")]
        if first == 0 or last == volume.num_slices - 1:
            result.flags.append("l3_at_scan_edge")
        result.flags.append("level_count_answer")
    if result.confidence < rule.low_confidence and "low_confidence" not in result.flags:
        result.flags.append("low_confidence")


def find_l3(
    source: str | os.PathLike | CTVolume,
    model: L3Model | str | os.PathLike | None = None,
    *,
    device: str | torch.device | None = None,
    batch_size: int | None = None,
    rule: LocateRule | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
    exhaustive: bool = False,
    precision: str = "auto",
    anatomy_check: bool = True,
    level_check: bool = True,
) -> L3Result:
    """Read ``source`` (a path or a volume), score its slices, and locate L3.

    The result is complete: its ``input`` is ``source`` as given (or the volume's ``source``),
    its ``seconds`` the wall time of the whole job, reading included when given a path.

    By default only the slices that decide the answer are scored (coarse-to-fine,
    :mod:`l3locator.fast_scoring`), screened in bfloat16 where the CPU has it natively and
    re-scored in float32 where a probability near the answer is not saturated: the same L3
    slice as scoring every slice in float32, several times faster. ``exhaustive=True`` scores
    every slice in float32 (the reference, :func:`~l3locator.engine.score_volume`).

    The result's ``slice_probabilities`` has one value per slice either way. ``scored_slices``
    lists the slices the model actually scored, or is None when it scored every slice; an
    unscored slice's value is the linear interpolation between the nearest scored slices on
    either side (which both lie below 0.25, and at most 12 mm apart), so the curve plots and
    reads as the model's evidence with the peaks measured. ``extra["scoring"]`` records the
    strategy, precision and the numbers of slices scored and re-scored in float32.

    Args:
        source: a DICOM folder, NIfTI or NRRD path, or an already loaded :class:`CTVolume`.
        model: an :class:`L3Model`, a model file path, or None for the shipped default model.
        device: ``"cpu"``, ``"cuda"``...; None picks CUDA when present.
        batch_size: slices per network call; None: the fastest for the model and device
            (:func:`~l3locator.engine.default_batch_size`).
        rule: the locate rule (also steers which slices the fast path scores); None: the
            model's own (:attr:`L3Model.locate_rule`, stored in its file).
        progress: called as ``progress(done, total)`` while slices are scored (on the fast path
            ``total`` may grow as refinement adds slices; the last call has ``done == total``).
        should_cancel: polled between batches; returning True raises ``Cancelled``.
        exhaustive: score every slice in float32 instead of the fast path.
        precision: the fast path's precision: ``"auto"`` (default), ``"fp32"``, ``"mixed"`` or
            ``"bf16"`` (see :mod:`l3locator.fast_scoring`).
        anatomy_check: reject candidate runs whose centre slice shows lungs (flag
            ``anatomy_rejected``; :mod:`l3locator.anatomy`). The fast path finds the same runs as
            exhaustive scoring, so the check changes both alike.
        level_check: when L3 is found, count the vertebrae from the sacrum and the lowest ribs
            (:mod:`l3locator.level_count`); where the count names an L3 range and the answer lies
            outside it by more than a quarter vertebra, flag ``level_disagreement`` and halve the
            confidence (at most 0.3), and move the answer to the counted L3 where the network
            has another candidate run centred there (``level_count_answer``; :func:`check_level`).
            ``extra["level_count"]`` is the count (:meth:`~l3locator.level_count.LevelCount.to_dict`;
            its range is None where it abstained), or None where it did not run.
    """
    started = time.perf_counter()
    volume = source if isinstance(source, CTVolume) else load_ct(source)
    check_volume(volume)
    l3model = model if isinstance(model, L3Model) else load_model(model)
    rule = rule if rule is not None else l3model.locate_rule
    if exhaustive:
        probabilities = score_volume(l3model, volume, batch_size=batch_size, device=device, progress=progress, should_cancel=should_cancel)
        scored_slices = None
        scoring = {"strategy": "exhaustive", "precision": "fp32", "slices_scored": volume.num_slices, "slices_rescored_fp32": 0}
    else:
        curve = score_coarse_to_fine(l3model, volume, rule=rule, precision=precision, batch_size=batch_size, device=device, progress=progress, should_cancel=should_cancel)
        probabilities = curve.probabilities
        scored_slices = None if curve.complete else curve.scored_indices()
        scoring = curve.summary()
    input_name = volume.source if isinstance(source, CTVolume) else os.fspath(source)
    result = result_from_probabilities(volume, probabilities, model_name=l3model.name, seconds=0.0, rule=rule,
                                       scored_slices=scored_slices, anatomy_check=anatomy_check, level_check=level_check,
                                       input_name=input_name)
    result.extra = {"scoring": scoring, **result.extra}
    result.seconds = time.perf_counter() - started
    return result


def read_and_find_l3(source: str | os.PathLike | CTVolume, model: L3Model | str | os.PathLike | None = None,
                     **options: Any) -> tuple[CTVolume, L3Result]:
    """:func:`find_l3` (``options``: its keyword arguments) that also returns the volume it
    searched: for shells that draw or save more from the scan (the QC picture) without reading
    it twice. The result is :func:`find_l3`'s, reading included."""
    started = time.perf_counter()
    volume = source if isinstance(source, CTVolume) else load_ct(source)
    result = find_l3(volume, model, **options)
    input_name = volume.source if isinstance(source, CTVolume) else os.fspath(source)
    return volume, replace(result, input=input_name, seconds=time.perf_counter() - started)
