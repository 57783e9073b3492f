"""Vertebra counting: a classical, model-free second opinion on which slices hold L3.

The classifier's worst failure is a confident answer one whole level off (L2 for L3). This module
counts vertebrae the way a reader does, from two landmarks, and gives an L3 range only when both
counts name the same vertebra; otherwise it abstains (``l3_range`` None). Abstaining is its normal
answer on chest scans, small crops, short scans and transitional anatomy; being confidently
wrong is what it must not be.

Steps (all lengths in mm; ``z`` is height along the axial axis, superior up):

1. **Spine track** (:mod:`l3locator.spine`). On a copy strided in-plane to about 3 mm, bone (> :data:`~l3locator.spine.BODY_HU` HU) is
   averaged over 30 mm chunks of slices; the vertebral body is the strongest smoothed bone blob
   within 35 mm of the body's lateral midline, replaced by the bone in front of the spinal canal
   where the two lie apart, chained chunk to chunk (jumps of at most
   :data:`~l3locator.spine.MAX_JUMP_MM`).
2. **Discs.** The **body profile**, per slice the mean HU inside an ellipse (16 mm across, 12 mm
   deep) at the body's centre resampled to 1 mm along z, gives the spine's period (body plus disc:
   the highest autocorrelation peak in 22–50 mm). The discs are read from the **ring profile**
   (:func:`_ring_profile`): per slice, the brightest HU along five rays from the body's centre (to
   either side, forwards, and forwards to either side; :data:`RING_RADII_MM` out), the median of
   the five. A body's slices show its cortical shell there (and healthy cancellous bone), a disc's
   neither, whichever of disc and cancellous bone reads brighter. **Discs** are the ring profile's
   minima, at least 0.65 periods apart, each :data:`MIN_DISC_DIP_HU` or more below the ring on both
   sides. (Until 2026-12-03 they were the body profile's dips, with a rule for bright endplates: on
   the real contrast chest CT in ../shared, bodies at 47-75 HU and each disc averaged with its
   endplates to 150-265 HU at 2.5 mm slices, the dips fell mid-body; ``bench/README.md``.)
3. **Sacrum anchor (from below).** Per slice, the width of the bone run through the body centre
   in the band from 10 mm in front of to 10 mm behind the body centre (:data:`SACRUM_BAND_MM`): at S1 the sacral alae (and the iliac bones beyond the SI
   joints) make it at least :data:`SACRUM_WIDTH_RATIO` × the median vertebral body width. The
   top of the highest such stretch (>= 12 mm tall) at least :data:`MIN_RIB_TO_SACRUM_PERIODS`
   vertebrae below the lowest rib (step 4; on chest CTs the rib heads beside the thoracic bodies
   are as wide as sacral alae) is S1; the disc at it is L5/S1 (where that
   wedge-shaped disc shows no dip, the top of S1 stands in for it, when the next disc lies one
   vertebra higher), and L3 is the third body above it.
4. **Rib anchor (from above).** A coronal maximum-intensity picture of the slab from the body
   centre to :data:`RIB_SLAB_BEHIND_MM` behind it, bone above :data:`RIB_HU`; thick bone (iliac
   wings, femoral heads) is removed by an opening of radius :data:`OPENING_MM`, so only thin bone is left. Outside the spine
   column, a **rib** is a thin-bone component that starts at the spine (within 15 mm of the
   column), reaches at least :data:`RIB_REACH_MM` from the midline (most lumbar transverse
   processes stop short of it) and drops at least :data:`RIB_DROP_MM` from its medial to its
   lateral end (transverse processes are level). A rib counts only when another confirms it: one
   on the other side (its partner, or the next one up where the partner is too short to be seen)
   or the next one up on the same side (:func:`_confirms`); a lone one is an iliac rim or a long
   transverse process more often. The lowest vertebra a confirmed rib starts from is the last
   rib-bearing one (T12 in the usual anatomy): the body below the first disc above the rib's
   highest medial point less :data:`RIB_HEAD_BELOW_DISC` periods (the rib head sits just below
   that disc), and L3 is the third body below it.
   Either count holds only where every disc gap from its anchor to L3 is one vertebra
   (:data:`DISC_GAP_PERIODS`, 0.6–1.4 × the period): a missed or an extra disc on the way would
   shift it by a level. Here the period is the lumbar spine's, read from the profile between the
   anchors (:func:`_lumbar_period`): on a whole-body scan the whole profile's is the thoracic
   spine's, a fifth shorter, and lumbar gaps checked against it failed.
5. **Verdict.** Both anchors must be found and name the same body, i.e. exactly five rib-free
   bodies between the lowest ribs and the sacrum; otherwise abstain with the reason. A count of
   four or six is a transitional vertebra (or a missed or extra disc): abstaining is right then.
   Where only one anchor is found (the scan ends above the sacrum or below the ribs, as most
   abdominal CTs do), its count is kept apart (``one_count_range``): weaker evidence, enough to
   doubt an answer on another level (:func:`disagrees`) but not to move it. Where both anchors are
   found but only one count can be made, that count is not used: on phantoms with real vertebra
   shapes it was a level off in half such scans (``bench/results/level_count.md``).

Measured on held-out phantoms and the real scans in ``../shared`` (``bench/level_count.py``,
``bench/results/level_count.md``). The counter reads a strided copy of about 1/16 of the voxels
plus a narrow slab around the spine, and looks for the spinal canal on slices 3 mm apart: about
0.15–0.25 s on a 512 × 512 × 500 volume.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import ndimage

from .spine import SpineTrack, in_plane_spacing, track_spine
from .volume import CTVolume

#: HU above which a voxel counts as bone for the spine track, the sacrum width and the rib picture.
BONE_HU = 180.0
#: Smallest field of view (mm, both in-plane directions) and axial length (mm) worth counting in.
MIN_FIELD_MM = 150.0
MIN_LENGTH_MM = 150.0
#: Half-depth and half-width (mm) of the ellipse at the body's centre whose mean HU makes the body
#: profile: 12 x 16 mm, well inside a lumbar body (about 30 x 45 mm), so that a track a few mm off
#: the centre still reads the body. 8 x 10 mm, the earlier size, counted fewer spines: both-anchor
#: counts 50 right / 2 wrong against 56 / 1 over three phantom seed ranges, lone counts alike (177 / 30);
#: at 20 x 24 mm the real ACRIN abdomen lost its count at two of its four samplings (bench/README.md).
BODY_PROFILE_RADII_MM = (6.0, 8.0)
#: Step 2's rays run from this far to this far (mm) from the body's centre: from inside the body to
#: past its cortical shell at the sides (a lumbar body is about 45 mm wide, 30 mm deep). Starting
#: at 8 or 6 mm found fewer discs on phantoms and counted fewer spines (``bench/README.md``).
RING_RADII_MM = (4.0, 22.0)
#: The rays' directions as (row, column) steps, rows anterior to posterior: to either side, forwards,
#: and forwards to either side. Not backwards, where the canal and the vertebral arch lie.
RING_RAYS = ((0.0, 1.0), (0.0, -1.0), (-1.0, 0.0), (-0.7071, 0.7071), (-0.7071, -0.7071))
#: A disc's ring value must lie this far (HU) below the ring's highest on each side within half a
#: period. 40 found more discs and more false ones, 100 fewer of both (``bench/README.md``).
MIN_DISC_DIP_HU = 60.0
#: A disc is looked for no nearer to the scan's first or last slice than this share of the spine's
#: period (body plus disc): enough of the next body to see the dip, and a scan that ends half-way
#: down L4 still shows the L3/L4 disc (half a period, the earlier margin, lost it).
DISC_EDGE_FRACTION = 0.3
#: A gap between consecutive discs on a count's way is one vertebra when it is this many periods long.
#: (0.7 at the short end was tried: on three phantom sets it cut as many right counts as wrong ones;
#: bench/README.md.)
DISC_GAP_PERIODS = (0.6, 1.4)
#: A slice is sacral when its bone run is this many times the median vertebral body width.
SACRUM_WIDTH_RATIO = 1.8
#: The sacral bone run is read in the rows from this far in front of to this far behind the body
#: centre (mm). Reaching 16 mm behind it (until 2026-12-03) took L5's transverse processes for sacral
#: alae on phantoms with real vertebra shapes (an S1 top found 10-22 mm up, inside L5); it was needed
#: while the spine track stopped short of the sacral promontory (:data:`~l3locator.spine.MAX_JUMP_MM`).
SACRUM_BAND_MM = (10.0, 10.0)
#: Lateral reach (mm from the spine's midline) that a lumbar transverse process does not attain.
RIB_REACH_MM = 55.0
#: Radius (mm) of the opening that tells thick bone and contrast-filled organs from ribs.
OPENING_MM = 12.0
#: Least drop (mm) of a rib from where it leaves the spine to its lateral end (processes are level).
RIB_DROP_MM = 15.0
#: A rib's partner on the other side leaves the spine within this height (mm) of it.
RIB_PAIR_MM = 12.0
#: The rib picture is the most intense projection of the slab from the body centre to this far behind
#: it (mm), thresholded at :data:`RIB_HU`: behind the body centre the ribs run near their heads, apart
#: from each other, and no contrast-filled heart, aorta or spleen lies over them; the contrast-filled
#: kidneys beside the lowest ribs stay under the threshold (a 180 HU bone threshold and a slab from
#: 40 mm in front broke or merged the lowest ribs; ``bench/README.md``).
RIB_SLAB_BEHIND_MM = 60.0
RIB_HU = 250.0
#: The highest point of the lowest rib's medial end lies in the upper part of its vertebra, a little
#: below the disc above it (2-5 mm on phantoms), and a disc found a few mm low can fall just below it:
#: the disc above the rib-bearing body is the first one above the rib less this share of the period.
RIB_HEAD_BELOW_DISC = 0.25
#: An answer more than this share of the counted L3 range's length outside it is another level: the
#: range is L3's body, so a quarter (8-9 mm for a lumbar body, about a disc's height) reaches across
#: the disc and no further (half, the earlier value, accepted answers up to the middle of the next
#: body: a 224 px trial network's answer in L4, 32 mm from L3's middle, passed with confidence 0.96;
#: bench/results/ablation_level_cues.md).
DISAGREEMENT_FRACTION = 0.25
#: Confidence of an answer the count disagrees with: halved, and at most this.
DISAGREEMENT_CONFIDENCE_CAP = 0.3
#: Bodies from the lowest rib-bearing vertebra down to L3, and from L3 down to the sacrum.
BODIES_BELOW_RIBS, BODIES_ABOVE_SACRUM = 3, 3
#: Without the other anchor, the lumbar spine's period is read this far (mm) above the sacrum or below
#: the lowest rib (five lumbar vertebrae and a half).
LUMBAR_REACH_MM = 220.0
#: The sacrum lies at least this many spine periods below the lowest rib (five lumbar bodies in the
#: usual anatomy, four with a sacralised L5 or thirteen ribs): it is not looked for higher.
MIN_RIB_TO_SACRUM_PERIODS = 2.0


@dataclass
class LevelCount:
    """What the counter believes. Slice indices are 0-based along the axial axis, as stored.

    Attributes:
        l3_range: inclusive slice range of the L3 body when both counts agree, else None (abstain).
        anchors: the landmarks found: ``"sacrum"``, ``"ribs"`` (either, both or none).
        reason: one sentence saying why it answered or abstained.
        disc_slices: slices of the discs it found (stored indices, ascending), for display.
        from_sacrum, from_ribs: the L3 range each count gives on its own (None when that
            anchor is missing or the count runs out of regular discs).
        one_count_range: where only one anchor was found and its count gives a range, that range
            (the counter abstains, but an answer on another level is doubted); else None.
    """

    l3_range: tuple[int, int] | None
    anchors: list[str] = field(default_factory=list)
    reason: str = ""
    disc_slices: list[int] = field(default_factory=list)
    from_sacrum: tuple[int, int] | None = None
    from_ribs: tuple[int, int] | None = None
    one_count_range: tuple[int, int] | None = None

    @property
    def abstained(self) -> bool:
        return self.l3_range is None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (ranges as two-element lists or None)."""
        def as_list(r: tuple[int, int] | None) -> list[int] | None:
            return [int(r[0]), int(r[1])] if r is not None else None

        return {"l3_slice_range": as_list(self.l3_range), "anchors": list(self.anchors), "reason": self.reason,
                "disc_slices": [int(k) for k in self.disc_slices], "from_sacrum": as_list(self.from_sacrum),
                "from_ribs": as_list(self.from_ribs), "one_count_range": as_list(self.one_count_range)}


def _body_profile(spine: SpineTrack) -> np.ndarray:
    """Step 2: mean HU per slice in an ellipse at the body's centre (:data:`BODY_PROFILE_RADII_MM`;
    float64, per slice)."""
    ry, rx = BODY_PROFILE_RADII_MM[0] / spine.pixel_mm[0], BODY_PROFILE_RADII_MM[1] / spine.pixel_mm[1]
    hy, hx = int(np.ceil(ry)), int(np.ceil(rx))
    yy, xx = np.mgrid[-hy : hy + 1, -hx : hx + 1]
    inside = (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0
    n, height, width = spine.stack.shape
    rows = np.round(spine.rows).astype(np.int64)[:, None] + yy[inside][None, :]  # [slice, ellipse pixel]
    cols = np.round(spine.cols).astype(np.int64)[:, None] + xx[inside][None, :]
    valid = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
    hu = spine.stack[np.arange(n)[:, None], rows.clip(0, height - 1), cols.clip(0, width - 1)].astype(np.float64)
    counted = valid.sum(axis=1)
    return np.where(counted > 0, np.where(valid, hu, 0.0).sum(axis=1) / np.maximum(counted, 1), 0.0)


def _ring_profile(spine: SpineTrack) -> np.ndarray:
    """Step 2: per slice, the median over :data:`RING_RAYS` of the brightest HU along the ray from
    :data:`RING_RADII_MM` [0] to [1] mm from the body's centre (float64, per slice; samples 0.5 mm
    apart, nearest pixel, clipped to the slice)."""
    radii = np.arange(RING_RADII_MM[0], RING_RADII_MM[1], 0.5)
    rays = np.asarray(RING_RAYS)
    n, height, width = spine.stack.shape
    row_steps = (rays[:, :1] * radii[None, :] / spine.pixel_mm[0]).ravel()
    col_steps = (rays[:, 1:] * radii[None, :] / spine.pixel_mm[1]).ravel()
    rows = np.round(spine.rows[:, None] + row_steps[None, :]).astype(np.int64).clip(0, height - 1)
    cols = np.round(spine.cols[:, None] + col_steps[None, :]).astype(np.int64).clip(0, width - 1)
    hu = spine.stack[np.arange(n)[:, None], rows, cols].astype(np.float64).reshape(n, len(rays), len(radii))
    return np.median(hu.max(axis=2), axis=1)


def _peaks(values: np.ndarray, distance: int = 1) -> np.ndarray:
    """Indices (ascending) of the local maxima of ``values``, the first and last samples excluded;
    a flat top counts once, at its middle. Of two maxima closer than ``distance`` samples the
    higher is kept. (What ``scipy.signal.find_peaks(values, distance=distance)`` returns, up to the
    order in which exactly equal maxima are taken; importing scipy.signal would cost about 0.5 s of
    a cold start.)"""
    v = np.asarray(values, dtype=np.float64)
    starts = np.concatenate(([0], np.flatnonzero(np.diff(v) != 0) + 1))  # runs of equal values
    ends = np.append(starts[1:], v.size) - 1
    height = v[starts]
    inner = np.arange(1, len(starts) - 1)
    top = inner[(height[inner] > height[inner - 1]) & (height[inner] > height[inner + 1])]
    peaks = (starts[top] + ends[top]) // 2
    keep = np.ones(peaks.size, dtype=bool)
    if distance > 1:
        for i in np.argsort(v[peaks], kind="stable")[::-1]:  # highest first: it removes its close, lower neighbours
            if keep[i]:
                close = np.abs(peaks - peaks[i]) < distance
                close[i] = False
                keep &= ~close
    return peaks[keep]


def _smoothed_mm(profile: np.ndarray, dz: float) -> tuple[np.ndarray, np.ndarray]:
    """A per-slice profile (body or ring) resampled to 1 mm along z and smoothed: heights (mm above
    slice 0), values."""
    z_mm = np.arange(len(profile)) * dz
    grid = np.arange(0.0, z_mm[-1] + 1e-9, 1.0)
    return grid, ndimage.gaussian_filter1d(np.interp(grid, z_mm, profile), max(1.5, dz / 2.5))


def _period_mm(p: np.ndarray) -> float:
    """The spine's period (mm, body plus disc) in a profile sampled every 1 mm: the highest
    autocorrelation peak in 22-50 mm; 0.0 when the profile is too short to tell."""
    detrended = p - ndimage.gaussian_filter1d(p, 20.0)
    lags = np.arange(22, 51)
    centred = detrended - detrended.mean()
    if len(centred) <= lags[-1] + 10:
        return 0.0
    corr = np.array([np.dot(centred[:-lag], centred[lag:]) / (len(centred) - lag) for lag in lags])
    # The highest interior peak: a trend left in the profile (the sacrum, a long scan's drift) can
    # make the autocorrelation climb to the end of the lag range, which is no period.
    peaks = _peaks(corr)
    return float(lags[peaks[np.argmax(corr[peaks])]] if peaks.size else lags[int(np.argmax(corr))])


def _find_discs(profile: np.ndarray, ring: np.ndarray, dz: float) -> tuple[np.ndarray, float]:
    """Step 2: disc heights (mm above slice 0) and the spine's period (mm), from the body profile
    (the period) and the ring profile (the discs), both per slice, ``dz`` mm apart."""
    period = _period_mm(_smoothed_mm(profile, dz)[1])
    if period == 0.0:
        return np.array([]), 0.0
    grid, p = _smoothed_mm(ring, dz)
    half, margin = int(0.5 * period), int(DISC_EDGE_FRACTION * period)
    discs = []
    for m in _peaks(-p, distance=max(1, int(0.65 * period))):
        above, below = p[m : m + half + 1].max(), p[max(m - half, 0) : m + 1].max()
        if min(above, below) - p[m] >= MIN_DISC_DIP_HU and margin <= m <= len(p) - 1 - margin:
            discs.append(grid[m])
    return np.asarray(discs), period


def _lumbar_period(profile: np.ndarray, dz: float, sacrum_mm: float | None, rib_mm: float | None) -> float | None:
    """The spine's period (mm) read from the part of the body profile where the counts run: from
    just below the sacrum's top to just above the lowest rib, or :data:`LUMBAR_REACH_MM` from the one
    found (heights in mm above slice 0). None without an anchor, or on under 60 mm of profile."""
    if sacrum_mm is None and rib_mm is None:
        return None
    low = sacrum_mm - 15.0 if sacrum_mm is not None else rib_mm - LUMBAR_REACH_MM
    high = rib_mm + 15.0 if rib_mm is not None else sacrum_mm + LUMBAR_REACH_MM
    first, last = max(0, int(low / dz)), min(len(profile) - 1, int(np.ceil(high / dz)))
    if (last - first) * dz <= 60.0:
        return None
    return _period_mm(_smoothed_mm(profile[first : last + 1], dz)[1]) or None


def _sacrum_top(spine: SpineTrack, body_width_mm: float, highest_mm: float | None = None) -> float | None:
    """Step 3: height (mm above slice 0) of the top of S1, or None when no sacrum is seen.
    ``highest_mm``: where the sacrum's top can lie at most (below the lowest rib); None: anywhere."""
    coarse, step = spine.coarse, spine.step
    cpx = (spine.pixel_mm[0] * step, spine.pixel_mm[1] * step)
    wide = np.zeros(coarse.shape[0], bool)
    band = (int(round(-SACRUM_BAND_MM[0] / cpx[0])), int(round(SACRUM_BAND_MM[1] / cpx[0])) + 1)
    for k in range(coarse.shape[0]):
        r, c = int(round(spine.rows[k] / step)), int(round(spine.cols[k] / step))
        rows = coarse[k, max(r + band[0], 0) : max(r + band[1], 1)]
        if rows.size == 0 or not 0 <= c < coarse.shape[2]:
            continue
        line = ndimage.binary_closing((rows > BONE_HU).any(axis=0), np.ones(3, bool))
        if not line[c]:
            continue
        left = c - np.argmin(line[c::-1]) if not line[: c + 1].all() else 0
        right = c + np.argmin(line[c:]) if not line[c:].all() else len(line)
        wide[k] = (right - left) * cpx[1] >= SACRUM_WIDTH_RATIO * body_width_mm
    tops = [b * spine.dz for a, b in _runs(wide) if (b - a + 1) * spine.dz >= 12.0]
    tops = [top for top in tops if highest_mm is None or top <= highest_mm]
    return float(tops[-1]) if tops else None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    padded = np.concatenate(([False], mask, [False]))
    edges = np.flatnonzero(padded[1:] != padded[:-1])
    return [(int(a), int(b) - 1) for a, b in zip(edges[::2], edges[1::2])]


def _body_width_mm(spine: SpineTrack) -> float:
    """Median width (mm) of the bone run through the body centre at the body's centre row."""
    coarse, step = spine.coarse, spine.step
    widths = []
    for k in range(0, coarse.shape[0], max(1, int(round(5.0 / spine.dz)))):
        r, c = int(round(spine.rows[k] / step)), int(round(spine.cols[k] / step))
        if not (0 <= r < coarse.shape[1] and 0 <= c < coarse.shape[2]):
            continue
        line = ndimage.binary_closing(coarse[k, r] > 100.0, np.ones(3, bool))
        if line[c] and not line.all():
            left = c - np.argmin(line[c::-1])
            right = c + np.argmin(line[c:])
            widths.append((right - left) * spine.pixel_mm[1] * step)
    return float(np.median(widths)) if widths else 0.0


def _lowest_rib_mm(spine: SpineTrack, body_width_mm: float, period_mm: float) -> float | None:
    """Step 4: height (mm above slice 0) where the lowest confirmed rib leaves the spine, or None.
    ``period_mm``: the spine's period (body plus disc)."""
    coarse, step = spine.coarse, spine.step
    cpx = (spine.pixel_mm[0] * step, spine.pixel_mm[1] * step)
    n, _, width = coarse.shape
    picture = np.full((n, width), -1000.0, np.float32)
    for k in range(n):
        r = int(round(spine.rows[k] / step))
        slab = coarse[k, max(r, 0) : max(r + int(RIB_SLAB_BEHIND_MM / cpx[0]), 1)]
        if slab.size:
            picture[k] = slab.max(axis=0)
    bone = picture > RIB_HU
    ry, rx = max(1, int(round(OPENING_MM / spine.dz))), max(1, int(round(OPENING_MM / cpx[1])))
    yy, xx = np.mgrid[-ry : ry + 1, -rx : rx + 1]
    thick = ndimage.binary_opening(bone, (yy / ry) ** 2 + (xx / rx) ** 2 <= 1.0)
    cols = spine.cols / step
    lateral_mm = np.abs(np.arange(width)[None, :] - cols[:, None]) * cpx[1]
    column = body_width_mm / 2 + 4.0
    thin = bone & ~thick & (lateral_mm > column)
    labels, _ = ndimage.label(thin, np.ones((3, 3), bool))
    ribs = []  # (height mm where it leaves the spine, side: +1 patient left, -1 right)
    for index, sl in enumerate(ndimage.find_objects(labels), start=1):
        zz, xx_ = np.nonzero(labels[sl] == index)
        zz, xx_ = zz + sl[0].start, xx_ + sl[1].start
        dist = lateral_mm[zz, xx_]
        if dist.min() > column + 15.0 or dist.max() < RIB_REACH_MM:
            continue
        medial = dist <= dist.min() + 6.0
        lateral = dist >= dist.max() - 6.0
        z_medial, z_lateral = zz[medial].max() * spine.dz, zz[lateral].mean() * spine.dz
        if z_medial - z_lateral < RIB_DROP_MM:
            continue
        ribs.append((z_medial, 1 if xx_.mean() > cols[zz].mean() else -1))
    confirmed = [rib[0] for i, rib in enumerate(ribs) if any(_confirms(other, rib, period_mm) for other in ribs[:i] + ribs[i + 1 :])]
    return min(confirmed) if confirmed else None


def _disc_above_rib(discs_mm: np.ndarray, rib_mm: float, period_mm: float) -> int | None:
    """Index in ``discs_mm`` (ascending heights, mm) of the disc above the lowest rib-bearing
    vertebra, whose rib leaves the spine at ``rib_mm`` (its highest medial point), or None: the first
    disc above ``rib_mm`` less :data:`RIB_HEAD_BELOW_DISC` periods."""
    above = np.flatnonzero(discs_mm > rib_mm - RIB_HEAD_BELOW_DISC * period_mm)
    return int(above[0]) if above.size else None


def _confirms(other: tuple[float, int], rib: tuple[float, int], period_mm: float) -> bool:
    """Whether the rib ``other`` confirms ``rib`` (each: height in mm, side): a rib on the other side
    from :data:`RIB_PAIR_MM` below it to 1.5 periods above it (its partner, or the next one up
    where its partner is too short to be seen), or the next rib up on the same side (0.5-1.5
    periods higher). A lone "rib" is an iliac crest's rim or a long transverse process more often
    than a rib."""
    (z, side), (z_other, side_other) = rib, other
    lowest_above = -RIB_PAIR_MM if side_other != side else 0.5 * period_mm
    return lowest_above <= z_other - z <= 1.5 * period_mm


def count_levels(volume: CTVolume) -> LevelCount:
    """Count the vertebrae of ``volume`` from the sacrum and from the lowest ribs (module docstring).

    Returns a :class:`LevelCount` whose ``l3_range`` is None unless both counts agree.
    """
    pixel_mm = in_plane_spacing(volume)
    stack = volume.axial_stack()
    if volume.superior_step < 0:
        stack = stack[::-1]
    n, dz = stack.shape[0], volume.slice_thickness
    field_mm = min(stack.shape[1] * pixel_mm[0], stack.shape[2] * pixel_mm[1])

    def stored(first: float, last: float) -> tuple[int, int]:
        """Inclusive stored slice range of the heights ``first``..``last`` (mm above slice 0)."""
        a, b = int(np.ceil(first / dz - 1e-6)), int(np.floor(last / dz + 1e-6))
        a, b = max(a, 0), min(b, n - 1)
        return (a, b) if volume.superior_step > 0 else (n - 1 - b, n - 1 - a)

    if field_mm < MIN_FIELD_MM:
        return LevelCount(None, reason=f"field of view {field_mm:.0f} mm is too small to see ribs or the sacrum")
    if n * dz < MIN_LENGTH_MM:
        return LevelCount(None, reason=f"scan is {n * dz:.0f} mm long, too short to count vertebrae")
    spine = track_spine(stack, pixel_mm, dz)
    if spine is None:
        return LevelCount(None, reason="no spine found")
    profile = _body_profile(spine)
    discs_mm, period = _find_discs(profile, _ring_profile(spine), dz)
    body_width = _body_width_mm(spine)
    rib = _lowest_rib_mm(spine, body_width, period) if body_width > 0 else None
    highest_sacrum = None if rib is None else rib - MIN_RIB_TO_SACRUM_PERIODS * period
    sacrum = _sacrum_top(spine, body_width, highest_sacrum) if body_width > 0 else None
    # the gaps on a count's way are checked against the lumbar spine's period, not the whole scan's
    period = _lumbar_period(profile, dz, sacrum, rib) or period
    anchors = [name for name, found in (("sacrum", sacrum), ("ribs", rib)) if found is not None]
    result = LevelCount(None, anchors)
    tolerance = max(0.3 * period, 6.0)

    def body(lower_disc: int, anchor_disc: int) -> tuple[int, int] | None:
        """The body between discs ``lower_disc`` and ``lower_disc + 1``, counted from the disc
        ``anchor_disc``; None when a gap on the way is not one vertebra (a missed or an extra disc
        would shift the count by a level)."""
        first, last = min(lower_disc, anchor_disc), max(lower_disc + 1, anchor_disc)
        if first < 0 or last >= len(discs_mm):
            return None
        gaps = np.diff(discs_mm[first : last + 1])
        if not np.all((DISC_GAP_PERIODS[0] * period <= gaps) & (gaps <= DISC_GAP_PERIODS[1] * period)):
            return None
        return stored(discs_mm[lower_disc] + 0.5 * dz, discs_mm[lower_disc + 1] - 0.5 * dz)

    if sacrum is not None and not np.any(np.abs(discs_mm - sacrum) <= tolerance):
        # The L5/S1 disc is often wedge-shaped and tilted, a shallow dip: the top of S1 stands in for
        # it when the lowest disc above lies one vertebra higher.
        higher = discs_mm[discs_mm > sacrum]
        if higher.size and 0.7 * period <= higher[0] - sacrum <= 1.35 * period:
            discs_mm = np.sort(np.append(discs_mm, sacrum))
    result.disc_slices = sorted({stored(d, d)[0] for d in discs_mm if 0 <= round(d / dz) < n})
    if sacrum is not None:
        below = np.flatnonzero(np.abs(discs_mm - sacrum) <= tolerance)
        if below.size:  # L5/S1; L3 lies between the discs 2 and 3 above it
            result.from_sacrum = body(int(below[-1]) + BODIES_ABOVE_SACRUM - 1, int(below[-1]))
    if rib is not None:
        top = _disc_above_rib(discs_mm, rib, period)
        if top is not None:  # L3 is three bodies below the lowest rib-bearing one
            result.from_ribs = body(top - BODIES_BELOW_RIBS - 1, top) if top - BODIES_BELOW_RIBS - 1 >= 0 else None
    if not anchors:
        result.reason = "neither the sacrum nor the lowest ribs found"
    elif result.from_sacrum is None or result.from_ribs is None:
        result.reason = "only one count possible (" + ", ".join(
            f"{name}: {'L3 at slices %d-%d' % r if r else 'no L3'}" for name, r in (("sacrum", result.from_sacrum), ("ribs", result.from_ribs))) + ")"
        counted = result.from_sacrum or result.from_ribs
        if counted and len(anchors) == 1:
            result.one_count_range = counted
            result.reason += "; an answer on another level is doubted, not moved"
        elif counted:
            result.reason += "; with both anchors found, one count alone is not trusted (the other failed)"
    elif result.from_sacrum != result.from_ribs:
        result.reason = (f"counts disagree: from the sacrum L3 is slices {result.from_sacrum[0]}-{result.from_sacrum[1]}, "
                         f"from the ribs {result.from_ribs[0]}-{result.from_ribs[1]} (transitional vertebra, or a disc missed)")
    else:
        result.l3_range = result.from_sacrum
        result.reason = "the counts from the sacrum and from the lowest ribs agree"
    return result


def disagrees(count: LevelCount, slice_index: int, slice_thickness_mm: float) -> bool:
    """Whether ``slice_index`` lies outside the counted L3 range (both counts agreeing, else the
    only count possible: ``one_count_range``) by more than a quarter vertebra
    (:data:`DISAGREEMENT_FRACTION` of the range's length, in mm). False when there is no count."""
    counted = count.l3_range if count.l3_range is not None else count.one_count_range
    if counted is None:
        return False
    first, last = counted
    outside_mm = max(first - slice_index, slice_index - last, 0) * slice_thickness_mm
    return outside_mm > DISAGREEMENT_FRACTION * (last - first + 1) * slice_thickness_mm


def lowered_confidence(confidence: float) -> float:
    """The confidence of an answer the count disagrees with: half of it, at most
    :data:`DISAGREEMENT_CONFIDENCE_CAP`."""
    return min(confidence / 2.0, DISAGREEMENT_CONFIDENCE_CAP)
