"""Which slices one epoch trains on, and the torch ``Dataset`` that serves them.

An epoch is drawn afresh (seeded) from the training cases:

1. every L3 slice;
2. non-L3 slices: a random ``negatives_fraction`` of them (1.0 = all, the paper); then, if
   ``max_slices`` is set and steps 1–2 would draw more, both classes are shrunk by the same
   factor to hold ``max_slices`` (the cap never changes the class ratio: capping only the
   negatives once turned a 200-case epoch into 84 % L3 slices and a model that saw L3 everywhere);
   with ``near_share`` > 0, that share of the drawn negatives comes from the slices marked
   ``near`` (L3's neighbours, :func:`near_l3_slices`) and the rest from the others, so the
   epoch holds more of the slices that are hardest to tell from L3 (the share is capped by
   how many near slices there are);
3. **oversampling**: ``round(oversampling_rate × N)`` extra L3 samples, where ``N`` is the number
   of slices from steps 1–2 (the epoch's training set; all slices of the training cases in the
   paper's setting). They are L3 slices drawn with replacement and marked for augmentation
   (:mod:`.augment`), so each is a new random variant. The share of L3 samples thus grows from
   ``L / N`` to ``(L + round(r N)) / (N + round(r N))``.

The order is shuffled. The ``Dataset`` reads each sample's channels from the memory-mapped
cache (:func:`~l3locator.preprocessing.assemble_inputs`, the shared step 5).

**Scan-edge cuts** (``edge_cut_rate`` > 0, 2.5D channels only): that share of the samples is
served as if its scan ended on one side (drawn at random, lower or higher slice indices) somewhere
between the slice itself and its 2.5D neighbour, so that neighbour repeats the scan's last slice
there, as inference does at a real scan's edge (:func:`~l3locator.preprocessing.assemble_inputs`
clamps). The label is unchanged: a slice's level does not depend on where the scan stops. Without
it only the slices near a phantom's own ends are ever seen with a clamped neighbour, and those
ends lie at L3 in only a fifth of the phantoms (extent ``l3_edge``).

**Neighbour-offset jitter** (``offset_jitter_mm`` > 0, 2.5D channels only): each sample's 2.5D
neighbours are taken at the preprocessing's offset plus a shift drawn uniformly from
``[-offset_jitter_mm, +offset_jitter_mm]`` (mm), so the network cannot tie a level to what lies
exactly one offset away (read on the real abdomen, the shipped network's profile changes with
the offset it is given; ``bench/results/ablation_context.md``). Inference keeps the preprocessing's
offset. The shifts are drawn after everything else, so an epoch without them is drawn as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from ..preprocessing import PreprocessingConfig, assemble_inputs, neighbor_offset_slices
from .cache import PreparedCase


@dataclass(frozen=True)
class EpochPlan:
    """The samples of one epoch, in training order (all arrays have one entry per sample)."""

    case_index: np.ndarray  # int64, index into the training cases
    slice_index: np.ndarray  # int64, slice of that case
    label: np.ndarray  # int64, 1 = L3
    augment: np.ndarray  # bool, an oversampled (augmented) L3 sample
    cut_side: np.ndarray | None = None  # int64, 0: whole scan; -1 / +1: scan cut toward lower / higher indices
    cut_fraction: np.ndarray | None = None  # float64 in [0, 1): where, from the slice (0) to its 2.5D neighbour
    offset_shift_mm: np.ndarray | None = None  # float64: added to the 2.5D neighbour offset (mm)

    def __len__(self) -> int:
        return len(self.label)

    @property
    def num_l3(self) -> int:
        return int(self.label.sum())

    @property
    def num_augmented(self) -> int:
        return int(self.augment.sum())


def near_l3_slices(targets: np.ndarray, slice_thickness_mm: float, distance_mm: float) -> np.ndarray:
    """Bool per slice: not L3, and within ``distance_mm`` (along the axial axis, mm) of an L3
    slice of ``targets`` (int64, 1 = L3). All False when the case holds no L3."""
    l3 = np.flatnonzero(np.asarray(targets) == 1)
    near = np.zeros(len(targets), dtype=bool)
    if l3.size == 0 or distance_mm <= 0:
        return near
    reach = int(np.floor(distance_mm / slice_thickness_mm + 1e-9))
    near[max(0, l3.min() - reach) : l3.max() + reach + 1] = True
    near[l3] = False
    return near


def plan_epoch(
    targets: Sequence[np.ndarray],
    rng: np.random.Generator,
    *,
    negatives_fraction: float = 1.0,
    max_slices: int | None = None,
    oversampling_rate: float = 0.0,
    near: Sequence[np.ndarray] | None = None,
    near_share: float = 0.0,
    edge_cut_rate: float = 0.0,
    offset_jitter_mm: float = 0.0,
) -> EpochPlan:
    """Draw one epoch (see the module docstring) from per-case targets (int64, 1 = L3) and,
    with ``near_share`` > 0, per-case bool masks ``near`` of L3's neighbouring slices. The scan-edge
    cuts (``edge_cut_rate`` > 0), then the neighbour-offset shifts (``offset_jitter_mm`` > 0) are
    drawn last, so an epoch without them is drawn as before."""
    if not 0.0 < negatives_fraction <= 1.0:
        raise ValueError("negatives_fraction must be in (0, 1]")
    if offset_jitter_mm < 0:
        raise ValueError("offset_jitter_mm must be at least 0")
    if not 0.0 <= edge_cut_rate <= 1.0:
        raise ValueError("edge_cut_rate must be in [0, 1]")
    if not 0.0 <= near_share <= 1.0:
        raise ValueError("near_share must be in [0, 1]")
    if near_share > 0 and near is None:
        raise ValueError("near_share needs the near masks")
    case_of = np.concatenate([np.full(len(t), i, dtype=np.int64) for i, t in enumerate(targets)])
    slice_of = np.concatenate([np.arange(len(t), dtype=np.int64) for t in targets])
    label_of = np.concatenate([np.asarray(t, dtype=np.int64) for t in targets])
    positives = np.flatnonzero(label_of == 1)
    negatives = np.flatnonzero(label_of == 0)
    n_negatives = int(round(negatives_fraction * len(negatives)))
    n_positives = len(positives)
    if max_slices is not None and n_positives + n_negatives > max_slices:
        # Shrink both classes by the same factor: the cap must not change the class ratio.
        n_positives = int(round(max_slices * n_positives / (n_positives + n_negatives)))
        n_negatives = max_slices - n_positives
    if near_share > 0:
        near_of = np.concatenate([np.asarray(mask, dtype=bool) for mask in near])
        close, far = negatives[near_of[negatives]], negatives[~near_of[negatives]]
        n_close = min(len(close), max(int(round(near_share * n_negatives)), n_negatives - len(far)))
        drawn_negatives = np.concatenate([rng.choice(close, n_close, replace=False), rng.choice(far, n_negatives - n_close, replace=False)])
    else:
        drawn_negatives = rng.choice(negatives, n_negatives, replace=False)
    chosen = np.concatenate([
        rng.choice(positives, n_positives, replace=False) if n_positives < len(positives) else positives,
        drawn_negatives,
    ])
    n_extra = int(round(oversampling_rate * len(chosen))) if n_positives else 0
    extra = rng.choice(chosen[label_of[chosen] == 1], n_extra, replace=True) if n_extra else np.empty(0, np.int64)
    samples = np.concatenate([chosen, extra])
    augment = np.concatenate([np.zeros(len(chosen), bool), np.ones(len(extra), bool)])
    order = rng.permutation(len(samples))
    samples, augment = samples[order], augment[order]
    cut_side = cut_fraction = offset_shift = None
    if edge_cut_rate > 0:
        cut = rng.random(len(samples)) < edge_cut_rate
        cut_side = np.where(cut, rng.choice(np.array([-1, 1]), len(samples)), 0).astype(np.int64)
        cut_fraction = rng.random(len(samples))
    if offset_jitter_mm > 0:
        offset_shift = rng.uniform(-offset_jitter_mm, offset_jitter_mm, len(samples))
    return EpochPlan(case_of[samples], slice_of[samples], label_of[samples], augment, cut_side, cut_fraction, offset_shift)


def cut_scan_range(num_slices: int, index: int, side: int, distance: int) -> tuple[int, int]:
    """Inclusive slice range of a scan of ``num_slices`` cut ``distance`` slices from ``index``
    toward lower (``side`` -1) or higher (+1) indices; the whole scan for ``side`` 0."""
    if side < 0:
        return max(0, index - distance), num_slices - 1
    if side > 0:
        return 0, min(num_slices - 1, index + distance)
    return 0, num_slices - 1


class EpochDataset(torch.utils.data.Dataset):
    """Serves ``(input [3, size, size] float32, label int64, augment bool)`` for an :class:`EpochPlan`."""

    def __init__(self, cases: Sequence[PreparedCase], plan: EpochPlan, config: PreprocessingConfig) -> None:
        self.cases = cases
        self.plan = plan
        self.config = config
        self._slices: dict[int, torch.Tensor] = {}

    def __len__(self) -> int:
        return len(self.plan)

    def _case_slices(self, index: int) -> torch.Tensor:
        if index not in self._slices:
            self._slices[index] = torch.from_numpy(self.cases[index].slices())
        return self._slices[index]

    def __getitem__(self, item: int) -> tuple[torch.Tensor, int, bool]:
        case_index = int(self.plan.case_index[item])
        case = self.cases[case_index]
        slice_index = int(self.plan.slice_index[item])
        slices = self._case_slices(case_index)
        config = self.config
        if self.plan.offset_shift_mm is not None and config.channel_mode == "neighbors":
            config = replace(config, neighbor_offset_mm=config.neighbor_offset_mm + float(self.plan.offset_shift_mm[item]))
        side = int(self.plan.cut_side[item]) if self.plan.cut_side is not None else 0
        if side and config.channel_mode == "neighbors":
            reach = neighbor_offset_slices(config, case.slice_thickness_mm)
            distance = int(self.plan.cut_fraction[item] * (reach + 1))  # 0 (the slice is the edge) .. reach
            first, last = cut_scan_range(slices.shape[0], slice_index, side, distance)
            slices, slice_index = slices[first : last + 1], slice_index - first
        inputs = assemble_inputs(slices, [slice_index], config, case.slice_thickness_mm, case.superior_step)
        return inputs[0].float(), int(self.plan.label[item]), bool(self.plan.augment[item])
