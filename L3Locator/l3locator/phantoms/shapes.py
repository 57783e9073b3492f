"""Paintable shapes: keyframed ellipses, rods, rod chains and keyframed polylines (torso mm, HU).

Every shape is an :class:`Item` that knows the z-range ``[zmin, zmax]`` (torso mm) it can touch
and paints itself on a :class:`~l3locator.phantoms.canvas.Canvas` slice as one or more
:class:`Layer` s: the outer layer first (a cortex, a wall), then layers shrunk by ``inset_mm``
inside it (marrow, content).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import NamedTuple

import numpy as np

from .canvas import Canvas, Window

Point = tuple[float, float, float]
"""A point ``(x, y, z)`` in torso mm."""


class Layer(NamedTuple):
    """One tissue layer of a shape, painted inside the shape shrunk by ``inset_mm``."""

    inset_mm: float
    hu: float
    texture_hu: float = 0.0  # amplitude of the shared texture added to ``hu``
    z_inset_mm: float = 0.0  # shrink at both z ends too (ellipses only: endplates, walls)


class EllipseKey(NamedTuple):
    """An ellipse cross-section at height ``z_mm``: centre, semi-axes (torso mm) and rotation."""

    z_mm: float
    x_mm: float
    y_mm: float
    semi_x_mm: float
    semi_y_mm: float
    angle_rad: float = 0.0


class Tilt(NamedTuple):
    """Endplates perpendicular to a curved spine: the z-range at torso ``y`` moves by ``slope * (y - y_ref_mm)``."""

    slope: float
    y_ref_mm: float


class GasLevel(NamedTuple):
    """Gas above a scanner-horizontal level (a fraction of the y semi-axis above the centre) in the innermost layer."""

    level: float
    hu: float


class PolylineKey(NamedTuple):
    """A polyline (torso x, y mm) of half-width ``half_width_mm`` at height ``z_mm``."""

    z_mm: float
    points_xy_mm: list[tuple[float, float]]
    half_width_mm: float


class Item(ABC):
    """Something painted on the slices whose slab overlaps ``[zmin, zmax]`` (torso mm)."""

    zmin: float
    zmax: float

    @abstractmethod
    def paint(self, c: Canvas) -> None:
        """Paint this item's HU (and labels) on the canvas's current slice."""


def ellipsoid_keys(zc: float, hz: float, cx: float, cy: float, a: float, b: float, angle: float = 0.0,
                   shift: tuple[float, float] = (0.0, 0.0), n: int = 7) -> list[EllipseKey]:
    """Keyframes of an ellipsoid centred at ``(cx, cy, zc)`` with semi-axes ``a``, ``b``, half-height ``hz`` (mm).

    The centre moves by ``shift`` (x, y mm) from bottom to top.
    """
    keys = []
    for t in np.linspace(-1.0, 1.0, n):
        s = math.sqrt(max(1.0 - t * t, 0.0)) if abs(t) < 1 else 0.25
        keys.append(EllipseKey(zc + t * hz, cx + shift[0] * t / 2, cy + shift[1] * t / 2, max(a * s, 0.5), max(b * s, 0.5), angle))
    return keys


def tube_keys(points: list[Point], a: float, b: float | None = None) -> list[EllipseKey]:
    """Keyframes of a roughly vertical tube through ``(x, y, z)`` points, semi-axes ``a`` (x) and ``b`` (y, default ``a``)."""
    return [EllipseKey(z, x, y, a, b if b is not None else a, 0.0) for x, y, z in points]


class Blob(Item):
    """An ellipse whose centre, axes and angle are interpolated between z keyframes.

    Each layer is painted inside the shape shrunk by its inset in-plane and by its z-inset at both
    z ends (cortex then marrow, wall then content...). ``tilt`` makes the z-range per pixel follow
    a curved spine's endplates; ``gas`` fills the innermost layer above a level with gas.
    ``inside_cavity`` keeps the shape inside the body cavity, ``below_diaphragm`` under the
    diaphragm. ``label`` is painted where the pixel centre is inside (``vertebral_body`` marks a
    vertebral body); ``clears_labels`` erases vertebra labels under the shape (the spinal canal).
    ``tissue`` names the body-composition tissue its layers are (None: organ, bone, vessel...;
    gas is never a tissue), for the phantoms' tissue ground truth.
    """

    def __init__(self, keys: list[EllipseKey], layers: list[Layer], *, label: int = 0, vertebral_body: bool = False,
                 inside_cavity: bool = False, below_diaphragm: bool = False, tilt: Tilt | None = None,
                 gas: GasLevel | None = None, clears_labels: bool = False, tissue: str | None = None):
        keyframes = np.array(sorted(keys), dtype=np.float64)
        if keyframes.shape[0] == 1:
            keyframes = np.vstack([keyframes, keyframes])
        self.keyframes = keyframes
        self.layers, self.label, self.vertebral_body = layers, label, vertebral_body
        self.inside_cavity, self.below_diaphragm, self.tilt, self.gas = inside_cavity, below_diaphragm, tilt, gas
        self.clears_labels = clears_labels
        self.tissue = tissue
        pad = abs(tilt.slope) * float(np.max(keyframes[:, 3:5])) if tilt else 0.0
        self.z0, self.z1 = float(keyframes[0, 0]), float(keyframes[-1, 0])
        self.zmin, self.zmax = self.z0 - pad, self.z1 + pad

    def section(self, z: float) -> EllipseKey:
        """The ellipse at height ``z`` (mm): keyframes interpolated linearly, held beyond the ends."""
        z = min(max(z, self.z0), self.z1)
        kf = self.keyframes
        i = int(np.searchsorted(kf[:, 0], z))
        if i <= 0:
            row = kf[0]
        elif i >= len(kf):
            row = kf[-1]
        else:
            lo, hi = kf[i - 1], kf[i]
            span = hi[0] - lo[0]
            row = lo + (hi - lo) * ((z - lo[0]) / span if span > 0 else 0.0)
        return EllipseKey._make(row.tolist())

    def paint(self, c: Canvas) -> None:
        _, cx, cy, a, b, angle = self.section(c.z)
        if a <= 0.3 or b <= 0.3:
            return
        win = c.window(cx, cy, max(a, b))
        if win is None:
            return
        d = c.ellipse_distance(win, cx, cy, a, b, angle)
        base = np.ones_like(d)
        if self.inside_cavity:
            base *= c.cavity[win]
        if self.below_diaphragm and c.diaphragm is not None and c.z - c.thickness < c.diaphragm.top_mm:
            zd = c.diaphragm.height(c.torso_x[win], c.torso_y[win])
            base *= np.clip((zd - c.z) / c.thickness + 0.5, 0.0, 1.0)
        if self.tilt is not None:
            shift = self.tilt.slope * (c.torso_y[win] - self.tilt.y_ref_mm)
        for n, layer in enumerate(self.layers):
            lo, hi = self.z0 + layer.z_inset_mm, self.z1 - layer.z_inset_mm
            if self.tilt is not None:
                zf = c.slab_fraction(lo + shift, hi + shift)
            else:
                zf = c.slab_fraction(lo, hi)
                if zf <= 0.0:
                    continue
            alpha = c.edge_alpha(d, layer.inset_mm) * zf * base
            c.composite(win, alpha, layer.hu, layer.texture_hu, self.tissue)
            if n == len(self.layers) - 1 and self.gas is not None:
                level = c.roll_sin * cx + c.roll_cos * cy + c.offset_y + self.gas.level * b
                above = np.clip((c.scan_y[win[0]] - level) * (1.0 / c.pixel_mm) + 0.5, 0.0, 1.0)
                c.composite(win, alpha * above, self.gas.hu)
        if self.label or self.clears_labels:
            self._paint_labels(c, win, d <= 0, shift if self.tilt is not None else None)

    def _paint_labels(self, c: Canvas, win: Window, inside: np.ndarray, shift: np.ndarray | None) -> None:
        if shift is not None:
            inside &= (c.z >= self.z0 + shift) & (c.z <= self.z1 + shift)
        elif not (self.z0 <= c.z <= self.z1):
            return
        if self.clears_labels:
            c.labels[win][inside] = 0
        else:
            c.label(win, inside, self.label, self.vertebral_body)


class RodCrossing(NamedTuple):
    """Where a rod crosses the current slice."""

    window: Window
    edge_distance: np.ndarray  # signed distance (mm) to the rod surface, negative inside
    slab_fraction: np.ndarray  # fraction of the slab the rod fills at each pixel
    axis_z: np.ndarray  # z (mm) of the rod's axis nearest each pixel


class Bar(Item):
    """A straight rod from ``start`` to ``end`` (torso points, mm) with rounded ends.

    Its in-plane half-width varies linearly from ``half_width_start_mm`` to ``half_width_end_mm``;
    its z-extent is the axis height ``+- half_height_mm``, so sloping rods (ribs, thoracic spinous
    processes) cross a slice as short segments.
    """

    def __init__(self, start: Point, end: Point, half_width_start_mm: float, half_width_end_mm: float, half_height_mm: float,
                 layers: list[Layer], label: int = 0):
        self.start, self.end = start, end
        self.hw0, self.hw1, self.half_height, self.layers, self.label = half_width_start_mm, half_width_end_mm, half_height_mm, layers, label
        self.zmin = min(start[2], end[2]) - half_height_mm
        self.zmax = max(start[2], end[2]) + half_height_mm
        self.dx, self.dy, self.dz = end[0] - start[0], end[1] - start[1], end[2] - start[2]
        self.len2 = max(self.dx * self.dx + self.dy * self.dy, 1e-9)

    def crossing(self, c: Canvas) -> RodCrossing | None:
        """Where the rod crosses this slice, or None when it does not (or lies off the image)."""
        x0, y0, z0 = self.start
        hh = self.half_height
        t_lo, t_hi = 0.0, 1.0
        if abs(self.dz) > 1e-6:
            ta, tb = (c.slab_bottom - hh - z0) / self.dz, (c.slab_top + hh - z0) / self.dz
            t_lo, t_hi = max(0.0, min(ta, tb)), min(1.0, max(ta, tb))
            if t_lo > t_hi:
                return None
        elif not (c.slab_bottom - hh < z0 < c.slab_top + hh):
            return None
        xa, ya = x0 + t_lo * self.dx, y0 + t_lo * self.dy
        xb, yb = x0 + t_hi * self.dx, y0 + t_hi * self.dy
        hw = max(self.hw0, self.hw1)
        win = c.window((xa + xb) / 2, (ya + yb) / 2, math.hypot(xb - xa, yb - ya) / 2 + hw)
        if win is None:
            return None
        u = c.torso_x[win] - x0
        v = c.torso_y[win] - y0
        t = np.clip((u * self.dx + v * self.dy) / self.len2, t_lo, t_hi)
        edge = np.hypot(u - t * self.dx, v - t * self.dy) - (self.hw0 + (self.hw1 - self.hw0) * t)
        zc = z0 + t * self.dz
        return RodCrossing(win, edge, c.slab_fraction(zc - hh, zc + hh), zc)

    def paint(self, c: Canvas) -> None:
        cross = self.crossing(c)
        if cross is None:
            return
        for layer in self.layers:
            c.composite(cross.window, c.edge_alpha(cross.edge_distance, layer.inset_mm) * cross.slab_fraction, layer.hu, layer.texture_hu)
        if self.label:
            c.label(cross.window, (cross.edge_distance <= 0) & (np.abs(cross.axis_z - c.z) <= self.half_height), self.label)


class Chain(Item):
    """Rods joined end to end (a rib) painted layer by layer, so inner layers run through the joints."""

    def __init__(self, bars: list[Bar]):
        self.bars, self.layers = bars, bars[0].layers
        self.zmin, self.zmax = min(b.zmin for b in bars), max(b.zmax for b in bars)

    def paint(self, c: Canvas) -> None:
        touching = (bar.crossing(c) for bar in self.bars if bar.zmax > c.slab_bottom and bar.zmin < c.slab_top)
        crossings = [cross for cross in touching if cross is not None]
        for layer in self.layers:
            for cross in crossings:
                c.composite(cross.window, c.edge_alpha(cross.edge_distance, layer.inset_mm) * cross.slab_fraction, layer.hu, layer.texture_hu)


class Polyline(Item):
    """Rods joining points interpolated between z keyframes (iliac wings, scapulae).

    Each slice paints the interpolated polyline with ``layers`` (layers with an inset at least the
    half-width are skipped); ``label`` is painted where the slice centre is within the keyframes.
    """

    def __init__(self, keys: list[PolylineKey], layers: list[Layer], label: int = 0):
        keys = sorted(keys, key=lambda key: key.z_mm)
        self.zs = np.array([key.z_mm for key in keys])
        self.points = np.array([key.points_xy_mm for key in keys], dtype=np.float64)
        self.half_widths = np.array([key.half_width_mm for key in keys])
        self.layers, self.label = layers, label
        self.zmin, self.zmax = float(self.zs[0]), float(self.zs[-1])

    def paint(self, c: Canvas) -> None:
        z = min(max(c.z, self.zmin), self.zmax)
        i = int(np.clip(np.searchsorted(self.zs, z), 1, len(self.zs) - 1))
        w = (z - self.zs[i - 1]) / max(self.zs[i] - self.zs[i - 1], 1e-9)
        pts = self.points[i - 1] + (self.points[i] - self.points[i - 1]) * w
        hw = float(self.half_widths[i - 1] + (self.half_widths[i] - self.half_widths[i - 1]) * w)
        zf = float(c.slab_fraction(self.zmin, self.zmax))
        if zf <= 0:
            return
        segments: list[tuple[Window, np.ndarray]] = []  # (window, signed distance to the segment's surface)
        for (xa, ya), (xb, yb) in zip(pts[:-1], pts[1:]):
            win = c.window((xa + xb) / 2, (ya + yb) / 2, math.hypot(xb - xa, yb - ya) / 2 + hw)
            if win is None:
                continue
            dx, dy = xb - xa, yb - ya
            u = c.torso_x[win] - xa
            v = c.torso_y[win] - ya
            t = np.clip((u * dx + v * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
            segments.append((win, np.hypot(u - t * dx, v - t * dy) - hw))
        for layer in self.layers:  # layer by layer, so the marrow runs through the joints
            if layer.inset_mm < hw:
                for win, edge in segments:
                    c.composite(win, c.edge_alpha(edge, layer.inset_mm) * zf, layer.hu, layer.texture_hu)
        if self.label and self.zmin <= c.z <= self.zmax:
            for win, edge in segments:
                c.label(win, edge <= 0, self.label)
