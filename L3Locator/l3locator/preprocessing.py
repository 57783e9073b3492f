"""Slice preprocessing: the single definition shared by training and inference.

A model file stores the :class:`PreprocessingConfig` it was trained with, and inference
rebuilds the identical pipeline from it, so the two cannot disagree.

Per axial slice (HU in, network input out), in this order:

0. **Field of view** (optional, ``spine_field_mm``): a square ``spine_field_mm`` wide around the
   spine (centred :data:`SPINE_WINDOW_BEHIND_BODY_MM` behind the vertebral body's centre on that
   slice, from :func:`l3locator.spine.vertebral_body_centres`; the slice's centre where no spine is
   found), outside the scan filled with ``hu_min``. The network then sees the vertebra and what
   lies around it at a fixed scale (1.56 mm per pixel for 200 mm at 128 px) instead of the whole
   slice at the scanner's field of view (330–500 mm: 2.6–3.9 mm per pixel). None: the whole slice
   (the paper).
1. **Clip** to ``[hu_min, hu_max]`` HU (paper: [-200, 1500]).
2. **Pad to square** with ``hu_min`` (air after clipping), centred, so non-square slices are
   not distorted by the resize.
3. **Resize** to ``input_size`` x ``input_size`` pixels (paper: 512 → 224), bilinear with
   antialiasing.
4. **Histogram stretch** (``stretch = "percentile"``, the paper): a per-slice linear contrast
   stretch that maps the ``stretch_low_percentile``-th and ``stretch_high_percentile``-th
   percentiles of the resized slice's values to 0 and 1 and saturates outside (MATLAB's
   ``imadjust(I, stretchlim(I))``, defaults 1 % and 99 %). A (near-)constant slice, percentiles
   < 1 HU apart, becomes zeros. ``stretch_min_white_hu`` (None: the paper's stretch) keeps the
   white point at or above that HU, so a slice whose 99th percentile is soft tissue is not
   stretched until organs turn white. ``stretch = "window"`` maps the clip window ``[hu_min, hu_max]``
   linearly to [0, 1] instead: a tissue's grey no longer depends on the rest of the slice (on the
   real ACRIN abdomen at L3 the 99th percentile lies at 90-110 HU and the vertebra saturates
   white; on the real crop around L3 at 700-950 HU and the same kind of vertebra is grey;
   ``bench/stretch_views.py``).
5. **Channels** (3, for ResNet): ``"repeat"`` puts the same slice in all three channels (the
   paper); ``"neighbors"`` (2.5D) puts the slices ``neighbor_offset_mm`` below and above the
   slice in channels 0 and 2 (inferior, centre, superior; clamped at the scan's ends).

Steps 1–4 are independent per slice (step 0 needs the scan's spine track, computed once per scan:
:func:`slice_windows`), so a volume is processed once into a stack of single-channel images
(:func:`preprocess_volume`), and channels are assembled per batch (:func:`assemble_inputs`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from .choices import CHANNEL_MODES, STRETCH_MODES
from .spine import in_plane_spacing, vertebral_body_centres
from .stored_settings import check_known_keys
from .volume import CTVolume

#: A slice whose stretch percentiles are closer than this (HU) counts as constant → zeros.
MIN_STRETCH_SPAN_HU = 1.0
#: Step 0: the window's centre lies this far (mm) behind the vertebral body's centre, between the
#: body and the spinal canal, so that the posterior elements (laminae, spinous process) fit in
#: the window as well as the body and what lies in front of it.
SPINE_WINDOW_BEHIND_BODY_MM = 15.0


@dataclass(frozen=True)
class PreprocessingConfig:
    """Settings of the slice preprocessing (units: HU, pixels, mm, percent)."""

    hu_min: float = -200.0
    hu_max: float = 1500.0
    stretch_low_percentile: float = 1.0
    stretch_high_percentile: float = 99.0
    stretch: str = "percentile"
    input_size: int = 224
    channel_mode: str = "repeat"
    neighbor_offset_mm: float = 5.0
    spine_field_mm: float | None = None
    stretch_min_white_hu: float | None = None

    def __post_init__(self) -> None:
        if self.hu_min >= self.hu_max:
            raise ValueError("hu_min must be below hu_max")
        if not 0 <= self.stretch_low_percentile < self.stretch_high_percentile <= 100:
            raise ValueError("stretch percentiles must satisfy 0 <= low < high <= 100")
        if self.stretch not in STRETCH_MODES:
            raise ValueError(f"stretch must be one of {STRETCH_MODES}, got {self.stretch!r}")
        if self.stretch_min_white_hu is not None and not self.hu_min < self.stretch_min_white_hu <= self.hu_max:
            raise ValueError("stretch_min_white_hu must be None or inside (hu_min, hu_max]")
        if self.stretch_min_white_hu is not None and self.stretch != "percentile":
            raise ValueError("stretch_min_white_hu applies to the percentile stretch only")
        if self.input_size < 16:
            raise ValueError("input_size must be at least 16 pixels")
        if self.channel_mode not in CHANNEL_MODES:
            raise ValueError(f"channel_mode must be one of {CHANNEL_MODES}, got {self.channel_mode!r}")
        if self.neighbor_offset_mm <= 0:
            raise ValueError("neighbor_offset_mm must be positive")
        if self.spine_field_mm is not None and not self.spine_field_mm >= 20.0:
            raise ValueError("spine_field_mm must be None (the whole slice) or at least 20 mm")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> PreprocessingConfig:
        """Build from a stored dict; unknown keys are an error (a newer, incompatible file)."""
        check_known_keys(cls, values, "preprocessing settings")
        return cls(**values)


def preprocess_slices(hu_slices: np.ndarray | torch.Tensor, config: PreprocessingConfig) -> torch.Tensor:
    """Steps 1–4 for a batch of slices.

    Args:
        hu_slices: ``[N, rows, columns]`` HU values (any real dtype).
        config: preprocessing settings.

    Returns:
        float32 tensor ``[N, input_size, input_size]`` with values in [0, 1].
    """
    # One copy, straight to float32 (the conversion step needs it anyway): writable, so torch
    # accepts it without warning even when the slices are a read-only view of a file's bytes, and
    # the in-place clamp never writes into the caller's volume.
    if isinstance(hu_slices, np.ndarray):
        x = torch.from_numpy(np.array(hu_slices, dtype=np.float32, order="C"))
    else:
        x = hu_slices.to(torch.float32, copy=True)
    x = x.clamp_(config.hu_min, config.hu_max)
    n, rows, cols = x.shape
    side = max(rows, cols)
    if rows != cols:
        top, left = (side - rows) // 2, (side - cols) // 2
        x = F.pad(x, (left, side - cols - left, top, side - rows - top), value=config.hu_min)
    size = config.input_size
    if side != size:
        x = F.interpolate(x[:, None], size=(size, size), mode="bilinear", align_corners=False, antialias=side > size)[:, 0]
    if config.stretch == "window":
        return x.sub_(config.hu_min).mul_(1.0 / (config.hu_max - config.hu_min)).clamp_(0.0, 1.0)
    flat = x.reshape(n, -1)
    q = torch.tensor([config.stretch_low_percentile / 100.0, config.stretch_high_percentile / 100.0])
    low, high = torch.quantile(flat, q, dim=1, keepdim=True)
    if config.stretch_min_white_hu is not None:
        high = high.clamp_min(config.stretch_min_white_hu)
    span = high - low
    scale = torch.where(span >= MIN_STRETCH_SPAN_HU, 1.0 / span.clamp_min(MIN_STRETCH_SPAN_HU), torch.zeros_like(span))
    return ((flat - low) * scale).clamp_(0.0, 1.0).reshape(n, size, size)


@dataclass(frozen=True)
class SliceWindows:
    """Step 0: per slice, the square of the axial stack the network sees (pixels of
    :meth:`~l3locator.volume.CTVolume.axial_stack`; it may reach outside the slice).

    Attributes:
        top, left: int64 ``[num_slices]``, the window's first row and column on each slice.
        side: the window's width and height (pixels).
    """

    top: np.ndarray
    left: np.ndarray
    side: int

    def cut(self, stack: np.ndarray, indices: np.ndarray, fill: float) -> np.ndarray:
        """The windows of the slices ``stack[indices]``, float32 ``[len(indices), side, side]`` (HU),
        ``fill`` outside the slice."""
        out = np.full((len(indices), self.side, self.side), fill, dtype=np.float32)
        rows, cols = stack.shape[1:]
        for i, k in enumerate(indices):
            r0, c0 = int(self.top[k]), int(self.left[k])
            r1, c1 = max(r0, 0), max(c0, 0)
            r2, c2 = min(r0 + self.side, rows), min(c0 + self.side, cols)
            if r2 > r1 and c2 > c1:
                out[i, r1 - r0 : r2 - r0, c1 - c0 : c2 - c0] = stack[k, r1:r2, c1:c2]
        return out


def slice_windows(volume: CTVolume, config: PreprocessingConfig) -> SliceWindows | None:
    """Step 0's windows for every slice of ``volume``, or None when ``config`` takes whole slices."""
    if config.spine_field_mm is None:
        return None
    row_mm, col_mm = in_plane_spacing(volume)
    side = max(1, int(round(config.spine_field_mm / (0.5 * (row_mm + col_mm)))))
    n, rows, cols = volume.axial_stack().shape
    centres = vertebral_body_centres(volume)
    if centres is None:
        centre_rows, centre_cols = np.full(n, (rows - 1) / 2), np.full(n, (cols - 1) / 2)
    else:
        centre_rows, centre_cols = centres[0] + SPINE_WINDOW_BEHIND_BODY_MM / row_mm, centres[1]
    top = np.round(centre_rows - (side - 1) / 2).astype(np.int64)
    left = np.round(centre_cols - (side - 1) / 2).astype(np.int64)
    return SliceWindows(top, left, side)


def iter_slice_chunks(volume: CTVolume, config: PreprocessingConfig, chunk_size: int = 32) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(first_index, hu_chunk)`` over the canonical axial stack, ``chunk_size`` slices at a
    time: whole slices, or step 0's windows when ``config`` asks for them."""
    stack = volume.axial_stack()
    windows = slice_windows(volume, config)
    for start in range(0, stack.shape[0], chunk_size):
        if windows is None:
            yield start, stack[start : start + chunk_size]
        else:
            yield start, windows.cut(stack, np.arange(start, min(start + chunk_size, stack.shape[0])), config.hu_min)


def preprocess_volume(volume: CTVolume, config: PreprocessingConfig, chunk_size: int = 32) -> torch.Tensor:
    """Steps 0–4 for every axial slice: float32 ``[num_slices, size, size]`` in [0, 1].

    Works in chunks so peak memory stays near one chunk of float32 slices plus the output.
    """
    out = torch.empty((volume.num_slices, config.input_size, config.input_size), dtype=torch.float32)
    for start, chunk in iter_slice_chunks(volume, config, chunk_size):
        out[start : start + len(chunk)] = preprocess_slices(chunk, config)
    return out


def neighbor_offset_slices(config: PreprocessingConfig, slice_thickness_mm: float) -> int:
    """Distance in slices between a slice and its 2.5D neighbours (at least 1)."""
    return max(1, int(round(config.neighbor_offset_mm / slice_thickness_mm)))


def assemble_inputs(
    slices: torch.Tensor,
    indices: np.ndarray | list[int],
    config: PreprocessingConfig,
    slice_thickness_mm: float,
    superior_step: int = 1,
) -> torch.Tensor:
    """Step 5: the network input ``[B, 3, size, size]`` for the slices at ``indices``.

    Args:
        slices: output of :func:`preprocess_volume` (all slices of one scan).
        indices: slice indices (along the axial axis, stored order) to build inputs for.
        config: preprocessing settings (``channel_mode``, ``neighbor_offset_mm``).
        slice_thickness_mm: distance between slices, for the 2.5D offset.
        superior_step: +1 if the index grows toward the head, -1 otherwise, so channel 0 is
            always the inferior neighbour.
    """
    idx = torch.as_tensor(np.asarray(indices, dtype=np.int64))
    if config.channel_mode == "repeat":
        return slices[idx][:, None].expand(-1, 3, -1, -1)
    step = neighbor_offset_slices(config, slice_thickness_mm) * superior_step
    last = slices.shape[0] - 1
    below = (idx - step).clamp(0, last)
    above = (idx + step).clamp(0, last)
    return torch.stack((slices[below], slices[idx], slices[above]), dim=1)
