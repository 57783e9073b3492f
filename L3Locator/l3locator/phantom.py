"""Synthetic CT phantoms: an HU volume with a VerSe vertebra label map, drawn from a seed.

Phantoms prove the pipeline (training, tests, demos) where annotated real CT is scarce, so every
axial slice carries the level cues a radiologist uses to tell L3 from its neighbours:

* **Spine**: vertebral bodies (cortical shell, cancellous core, endplates) whose height and width
  grow caudally, discs, pedicles, laminae, spinous processes, articular processes, spinal canal
  with cord (ending at L1), and transverse processes whose length depends on the level (lumbar:
  L1 short, L3 longest, L5 stout). Endplates follow the sagittal curve (lordosis / kyphosis), so
  a slice can cut a body and a disc obliquely.
* **Ribs** (with costal cartilage) on thoracic vertebrae only, sloping down anteriorly; the last
  two pairs are short and floating. Sternum, clavicles and scapulae in the chest.
* **Chest**: lungs down to a domed diaphragm (lowest in the posterior recesses around T12),
  mediastinum, heart, aorta (ascending, arch, descending), pulmonary arteries, trachea/bronchi,
  oesophagus; thyroid and neck vessels above.
* **Abdomen**: liver on the right down to about L2, spleen, stomach with an air-fluid level,
  pancreas, kidneys (about T12-L3, cortex/medulla/sinus), diaphragmatic crura, psoas muscles
  appearing at L1 and growing caudally, quadratus lumborum, erector spinae, aorta bifurcating
  at L4, IVC, colon and small bowel with gas pockets.
* **Pelvis**: iliac wings with the crest top near the L4/L5 disc, iliacus, sacrum (with alae and
  SI joints) below the last lumbar vertebra, bladder, rectum, acetabula, femoral heads, necks and
  trochanters at the bottom of whole-body scans.
* **Patient and scanner**: body size, subcutaneous and visceral fat, arms (down, optionally),
  in-plane roll, scoliosis, patient table, contrast phase, partial-volume averaging over the
  slice thickness, in-plane blur, noise, int16 HU.

Coordinates
-----------
Voxels are indexed ``[k, j, i]`` (as :class:`~l3locator.volume.CTVolume`): ``i`` runs toward the
patient's left, ``j`` toward posterior and ``k`` toward superior (``k = 0`` is the lowest slice)
unless ``superior_first=True`` stores slices head-first. ``ijk_to_ras`` maps to RAS millimetres
with an arbitrary origin. Slice spacing equals the slice thickness. Internally anatomy is laid out
in "torso" millimetres (+x patient right, +y anterior, +z superior) around the torso centre.

Vertebra labels and variants
----------------------------
Labels are VerSe ids: C1-C7 = 1-7, T1-T12 = 8-19, L1-L5 = 20-24, L6 = 25, sacrum = 26, T13 = 28
(0 = background), painted on vertebral bodies and posterior elements (not discs, not ribs).
Segment identity follows the ribs: a vertebra is *thoracic* if and only if it bears a rib pair,
and the lumbar vertebrae are the rib-free presacral vertebrae numbered from the top. So L1 is the
first vertebra below the last rib-bearing one and **L3 is always the third vertebra below the last
rib-bearing vertebra**, whatever the variant:

* ``"normal"``: T1-T12 bear ribs, L1-L5, sacrum.
* ``"11_ribs"``: 11 thoracic vertebrae (T1-T11 bear ribs; id 19 is absent), L1-L5.
* ``"13_ribs"``: 13 thoracic vertebrae (T13 = 28 bears the 13th rib pair), L1-L5.
* ``"lumbarised"``: S1 is free: six lumbar vertebrae L1-L6 (L6 = 25); a four-segment sacrum.
* ``"sacralised"``: L5 is fused into the sacrum: four lumbar vertebrae L1-L4; a six-segment sacrum.

Counting up from the sacrum gives the wrong level in the last two; counting ribs gives the right
one in all five. Organs keep their usual relation to the ribs/diaphragm above and to the sacrum
(iliac crest at the last lumbar level) below, as in real transitional anatomy.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage

from .labels import l3_range_from_vertebra_map
from .volume import CTVolume

#: VerSe vertebra ids by name (``"sacrum"`` covers all sacral segments).
VERSE_IDS: dict[str, int] = {
    **{f"C{n}": n for n in range(1, 8)},
    **{f"T{n}": 7 + n for n in range(1, 13)},
    **{f"L{n}": 19 + n for n in range(1, 6)},
    "L6": 25,
    "sacrum": 26,
    "T13": 28,
}
L3_LABEL = 22
EXTENTS = ("abdomen", "chest", "whole_body", "l3_edge", "random")
VARIANTS = ("normal", "11_ribs", "13_ribs", "lumbarised", "sacralised")
#: Slice thicknesses (mm) drawn when none is given: the usual clinical reconstructions.
THICKNESSES_MM = (0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)

_AIR = -1000.0
_TEX_SIGMA_MM = 1.6  # correlation length of the shared texture (trabeculae, stool, lung vessels)


@dataclass
class Phantom:
    """A synthetic CT scan with its ground truth.

    Attributes:
        volume: the CT volume (int16 HU voxels ``[k, j, i]``, RAS geometry, source ``"phantom:<seed>"``).
        vertebra_labels: uint8 VerSe ids, same shape as the voxels (bodies + posterior elements).
        level_ranges: inclusive stored-``k`` slice range of every vertebra name whose label is present.
        l3_range: inclusive stored-``k`` range where L3 (label 22) is the majority vertebra label
            (:func:`~l3locator.labels.l3_range_from_vertebra_map`, as training reads label maps), or None.
        params: the random anatomy and acquisition that were drawn (JSON-serialisable), among them
            ``extent``, ``variant``, ``rib_bearing`` (names of the rib-bearing vertebrae), ``l3_cut_by``
            (``"lower"``/``"upper"`` for ``l3_edge``, else None), ``contrast``, ``arms_down``, ``hu``
            (tissue values) and ``vertebral_bodies_ras_z_mm`` (RAS z of each body's lower/upper endplate
            at its centre).
        body_ranges: like ``level_ranges`` but for the vertebral bodies alone (no posterior elements).
    """

    volume: CTVolume
    vertebra_labels: np.ndarray
    level_ranges: dict[str, tuple[int, int]]
    l3_range: tuple[int, int] | None
    params: dict
    body_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)


# ================================================================================================
# Rendering primitives
# ================================================================================================


class _Canvas:
    """One axial slice being painted, with the pixel grid expressed in torso millimetres.

    Painting is alpha compositing: ``img += alpha * (value - img)``, where ``alpha`` combines an
    anti-aliased in-plane edge (partial volume across pixels) and the fraction of the slab
    ``[z - T/2, z + T/2]`` that the structure fills (partial volume across the slice thickness).
    Labels are painted where the pixel centre is inside the shape and the slice centre is inside
    the structure's z-range.
    """

    def __init__(self, ni: int, nj: int, px: float, roll: float, offset: tuple[float, float], thickness: float, tex: np.ndarray):
        self.ni, self.nj, self.px, self.thickness = ni, nj, px, thickness
        self.cos, self.sin = math.cos(roll), math.sin(roll)
        self.ox, self.oy = offset
        # Scanner coordinates of pixel centres (mm): x of column i, y of row j (FOV centred on 0).
        self.x0 = (ni - 1) / 2.0 * px
        self.y0 = (nj - 1) / 2.0 * px
        xs = (self.x0 - np.arange(ni) * px).astype(np.float32)
        ys = (self.y0 - np.arange(nj) * px).astype(np.float32)
        self.scan_y = ys[:, None]
        self.scan_x = xs[None, :]
        dx, dy = self.scan_x - self.ox, self.scan_y - self.oy
        self.xt = (self.cos * dx + self.sin * dy).astype(np.float32)
        self.yt = (-self.sin * dx + self.cos * dy).astype(np.float32)
        self.r = np.hypot(self.xt, self.yt)
        nb = 1024
        self.theta_bin = ((np.arctan2(self.yt, self.xt) + math.pi) / (2 * math.pi) * nb).astype(np.int32) % nb
        theta = (np.arange(nb) + 0.5) / nb * 2 * math.pi - math.pi
        self.bin_cos, self.bin_sin = np.cos(theta), np.sin(theta)
        self.tex_full = tex
        self.img = np.empty((nj, ni), np.float32)
        self.lab = np.zeros((nj, ni), np.uint8)
        self.cav = np.zeros((nj, ni), np.float32)
        self.z = self.s0 = self.s1 = 0.0
        self.tex = tex[:nj, :ni]
        self.dome: _Dome | None = None
        self.body_labels: set[int] = set()

    def start(self, z: float) -> None:
        """Reset for the slice centred at height ``z`` (mm, torso frame)."""
        self.z = z
        self.s0, self.s1 = z - self.thickness / 2, z + self.thickness / 2
        self.img.fill(_AIR)
        self.lab.fill(0)
        self.cav.fill(0.0)
        th, tw = self.tex_full.shape
        oy = int(round(z * 0.37)) % (th - self.nj)
        ox = int(round(z * 0.23 + 17 * math.sin(z * 0.013))) % (tw - self.ni)
        self.tex = self.tex_full[oy : oy + self.nj, ox : ox + self.ni]
        self.body_labels = set()

    def zfrac(self, lo: Any, hi: Any) -> Any:
        """Fraction of the current slab inside ``[lo, hi]`` (scalars or arrays)."""
        return np.clip((np.minimum(hi, self.s1) - np.maximum(lo, self.s0)) / self.thickness, 0.0, 1.0)

    def bbox(self, x: float, y: float, radius: float) -> tuple[slice, slice] | None:
        """Pixel window covering a disc of ``radius`` mm around torso point ``(x, y)``, or None if off-image."""
        sx = self.cos * x - self.sin * y + self.ox
        sy = self.sin * x + self.cos * y + self.oy
        col, row, rp = (self.x0 - sx) / self.px, (self.y0 - sy) / self.px, radius / self.px + 1.5
        c0, c1 = max(int(col - rp), 0), min(int(col + rp) + 2, self.ni)
        r0, r1 = max(int(row - rp), 0), min(int(row + rp) + 2, self.nj)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def ellipse_distance(self, win: tuple[slice, slice], cx: float, cy: float, a: float, b: float, ang: float) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) to an ellipse, on a pixel window."""
        u = self.xt[win] - cx
        v = self.yt[win] - cy
        if ang:
            ca, sa = math.cos(ang), math.sin(ang)
            u, v = u * ca + v * sa, v * ca - u * sa
        pa, qb = u / a, v / b
        r = np.sqrt(pa * pa + qb * qb)
        grad = np.sqrt((pa / a) ** 2 + (qb / b) ** 2) / np.maximum(r, 1e-3)
        return (r - 1.0) / np.maximum(grad, 1.0 / max(a, b))

    def composite(self, win: tuple[slice, slice], alpha: np.ndarray, value: float, tex_amp: float = 0.0) -> None:
        """Blend ``value`` (+ ``tex_amp`` x texture) into the window with weights ``alpha``."""
        target = self.img[win]
        val: Any = value + tex_amp * self.tex[win] if tex_amp else value
        target += alpha * (val - target)

    def label(self, win: tuple[slice, slice], mask: np.ndarray, label: int, body: bool = False) -> None:
        """Write ``label`` where ``mask``; remember which vertebral bodies this slice holds."""
        if mask.any():
            self.lab[win][mask] = label
            if body:
                self.body_labels.add(label)


@dataclass
class _Dome:
    """Diaphragm surface z(x, y) in torso mm: two paraboloid domes, lowest in the posterior recesses."""

    z_right: float
    z_left: float
    z_recess: float
    x_peak: float
    y_peak: float
    scale_x: float
    scale_ant: float
    scale_post: float
    drop_lat: float
    drop_ant: float

    def __post_init__(self) -> None:
        self.drop_post = max(self.z_right, self.z_left) - self.z_recess + 25.0

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Diaphragm height (mm) under each torso point."""
        u = (np.abs(x) - self.x_peak) / self.scale_x
        va = np.maximum(y - self.y_peak, 0.0) / self.scale_ant
        vp = np.maximum(self.y_peak - y, 0.0) / self.scale_post
        peak = np.where(x > 0, self.z_right, self.z_left)
        z = peak - self.drop_lat * u * u - self.drop_ant * va * va - self.drop_post * vp * vp
        return np.maximum(z, self.z_recess)

    @property
    def top(self) -> float:
        return max(self.z_right, self.z_left)


class _Item:
    """Something painted on the slices whose slab overlaps ``[zmin, zmax]``."""

    zmin: float
    zmax: float

    def paint(self, c: _Canvas) -> None:  # pragma: no cover - interface
        raise NotImplementedError


class _Blob(_Item):
    """An ellipse whose centre, axes and angle are interpolated between z keyframes.

    ``layers`` are ``(inset_mm, hu, texture_hu, z_inset_mm)``: each is painted inside the shape
    shrunk by ``inset`` in-plane and by ``z_inset`` at both z ends (cortex then marrow, wall then
    content...). ``tilt`` ``(g, y_ref)`` makes the z-range per pixel ``[zmin, zmax] + g (y - y_ref)``
    (endplates perpendicular to a curved spine). ``gas`` ``(level, hu)`` fills the innermost layer
    above ``level`` (fraction of the half-axis, scanner-horizontal) with gas. ``clip`` keeps the
    shape inside the body cavity; ``dome`` = +1 keeps it under the diaphragm. ``carve`` clears
    vertebra labels under the shape (the spinal canal).
    """

    def __init__(self, keys: list[tuple[float, float, float, float, float, float]], layers: list[tuple[float, ...]], *,
                 label: int = 0, body: bool = False, clip: bool = False, dome: int = 0, tilt: tuple[float, float] | None = None,
                 gas: tuple[float, float] | None = None, carve: bool = False):
        kf = np.array(sorted(keys), dtype=np.float64)
        if kf.shape[0] == 1:
            kf = np.vstack([kf, kf])
        self.kf = kf
        layers = [tuple(layer) + (0.0,) * (4 - len(layer)) for layer in layers]  # z_inset defaults to 0
        self.layers, self.label, self.body, self.clip, self.dome, self.tilt, self.gas = layers, label, body, clip, dome, tilt, gas
        self.carve = carve
        pad = abs(tilt[0]) * float(np.max(kf[:, 3:5])) if tilt else 0.0
        self.z0, self.z1 = float(kf[0, 0]), float(kf[-1, 0])
        self.zmin, self.zmax = self.z0 - pad, self.z1 + pad

    def paint(self, c: _Canvas) -> None:
        z = min(max(c.z, self.z0), self.z1)
        kf = self.kf
        i = int(np.searchsorted(kf[:, 0], z))
        if i <= 0:
            row = kf[0]
        elif i >= len(kf):
            row = kf[-1]
        else:
            lo, hi = kf[i - 1], kf[i]
            span = hi[0] - lo[0]
            row = lo + (hi - lo) * ((z - lo[0]) / span if span > 0 else 0.0)
        _, cx, cy, a, b, ang = (float(v) for v in row)
        if a <= 0.3 or b <= 0.3:
            return
        win = c.bbox(cx, cy, max(a, b))
        if win is None:
            return
        d = c.ellipse_distance(win, cx, cy, a, b, ang)
        base = np.ones_like(d)
        if self.clip:
            base *= c.cav[win]
        if self.dome and c.dome is not None and c.z - c.thickness < c.dome.top:
            zd = c.dome.height(c.xt[win], c.yt[win])
            base *= np.clip((zd - c.z) / c.thickness + 0.5, 0.0, 1.0)
        if self.tilt is not None:
            shift = self.tilt[0] * (c.yt[win] - self.tilt[1])
        inv_px = 1.0 / c.px
        for n, (inset, hu, tex, zin) in enumerate(self.layers):
            lo, hi = self.z0 + zin, self.z1 - zin
            if self.tilt is not None:
                zf = c.zfrac(lo + shift, hi + shift)
            else:
                zf = c.zfrac(lo, hi)
                if zf <= 0.0:
                    continue
            alpha = np.clip(0.5 - (d + inset) * inv_px, 0.0, 1.0) * zf * base
            c.composite(win, alpha, hu, tex)
            if n == len(self.layers) - 1 and self.gas is not None:
                level = c.sin * cx + c.cos * cy + c.oy + self.gas[0] * b
                above = np.clip((c.scan_y[win[0]] - level) * inv_px + 0.5, 0.0, 1.0)
                c.composite(win, alpha * above, self.gas[1])
        if self.label or self.carve:
            inside = d <= 0
            if self.tilt is not None:
                inside &= (c.z >= self.z0 + shift) & (c.z <= self.z1 + shift)
            elif not (self.z0 <= c.z <= self.z1):
                return
            if self.carve:
                c.lab[win][inside] = 0
            else:
                c.label(win, inside, self.label, self.body)


class _Bar(_Item):
    """A straight rod from ``p0`` to ``p1`` (torso x, y, z in mm) with rounded ends.

    In-plane half-width varies linearly ``hw0 -> hw1``; its z-extent is ``zc(t) +- hh`` around
    the line, so sloping rods (ribs, thoracic spinous processes) cross a slice as short segments.
    ``layers`` are ``(inset_mm, hu, texture_hu)``.
    """

    def __init__(self, p0: tuple[float, float, float], p1: tuple[float, float, float], hw0: float, hw1: float, hh: float,
                 layers: list[tuple[float, float, float]], label: int = 0):
        self.p0, self.p1 = p0, p1
        self.hw0, self.hw1, self.hh, self.layers, self.label = hw0, hw1, hh, layers, label
        self.zmin = min(p0[2], p1[2]) - hh
        self.zmax = max(p0[2], p1[2]) + hh
        self.dx, self.dy, self.dz = p1[0] - p0[0], p1[1] - p0[1], p1[2] - p0[2]
        self.len2 = max(self.dx * self.dx + self.dy * self.dy, 1e-9)

    def geometry(self, c: _Canvas) -> tuple[tuple[slice, slice], np.ndarray, np.ndarray, np.ndarray] | None:
        """(window, signed distance to the rod surface, slab fraction, rod-axis z) on this slice, or None."""
        x0, y0, z0 = self.p0
        t_lo, t_hi = 0.0, 1.0
        if abs(self.dz) > 1e-6:
            ta, tb = (c.s0 - self.hh - z0) / self.dz, (c.s1 + self.hh - z0) / self.dz
            t_lo, t_hi = max(0.0, min(ta, tb)), min(1.0, max(ta, tb))
            if t_lo > t_hi:
                return None
        elif not (c.s0 - self.hh < z0 < c.s1 + self.hh):
            return None
        xa, ya = x0 + t_lo * self.dx, y0 + t_lo * self.dy
        xb, yb = x0 + t_hi * self.dx, y0 + t_hi * self.dy
        hw = max(self.hw0, self.hw1)
        win = c.bbox((xa + xb) / 2, (ya + yb) / 2, math.hypot(xb - xa, yb - ya) / 2 + hw)
        if win is None:
            return None
        u = c.xt[win] - x0
        v = c.yt[win] - y0
        t = np.clip((u * self.dx + v * self.dy) / self.len2, t_lo, t_hi)
        edge = np.hypot(u - t * self.dx, v - t * self.dy) - (self.hw0 + (self.hw1 - self.hw0) * t)
        zc = z0 + t * self.dz
        return win, edge, c.zfrac(zc - self.hh, zc + self.hh), zc

    def paint(self, c: _Canvas) -> None:
        geo = self.geometry(c)
        if geo is None:
            return
        win, edge, zf, zc = geo
        inv_px = 1.0 / c.px
        for inset, hu, tex in self.layers:
            c.composite(win, np.clip(0.5 - (edge + inset) * inv_px, 0.0, 1.0) * zf, hu, tex)
        if self.label:
            c.label(win, (edge <= 0) & (np.abs(zc - c.z) <= self.hh), self.label)


class _Chain(_Item):
    """Rods joined end to end (a rib) painted layer by layer, so inner layers run through the joints."""

    def __init__(self, bars: list[_Bar]):
        self.bars, self.layers = bars, bars[0].layers
        self.zmin, self.zmax = min(b.zmin for b in bars), max(b.zmax for b in bars)

    def paint(self, c: _Canvas) -> None:
        geos = [g for g in (bar.geometry(c) for bar in self.bars if bar.zmax > c.s0 and bar.zmin < c.s1) if g is not None]
        inv_px = 1.0 / c.px
        for inset, hu, tex in self.layers:
            for win, edge, zf, _ in geos:
                c.composite(win, np.clip(0.5 - (edge + inset) * inv_px, 0.0, 1.0) * zf, hu, tex)


class _Polyline(_Item):
    """Rods joining points interpolated between z keyframes (iliac wings, scapulae).

    ``keys`` are ``(z, [(x, y), ...], half_width)``; each slice paints the interpolated polyline
    with ``layers`` ``(inset_mm, hu, texture_hu)`` (layers with inset >= half-width are skipped).
    """

    def __init__(self, keys: list[tuple[float, list[tuple[float, float]], float]], layers: list[tuple[float, float, float]], label: int = 0):
        keys = sorted(keys, key=lambda k: k[0])
        self.zs = np.array([k[0] for k in keys])
        self.pts = np.array([k[1] for k in keys], dtype=np.float64)
        self.hws = np.array([k[2] for k in keys])
        self.layers, self.label = layers, label
        self.zmin, self.zmax = float(self.zs[0]), float(self.zs[-1])

    def paint(self, c: _Canvas) -> None:
        z = min(max(c.z, self.zmin), self.zmax)
        i = int(np.clip(np.searchsorted(self.zs, z), 1, len(self.zs) - 1))
        w = (z - self.zs[i - 1]) / max(self.zs[i] - self.zs[i - 1], 1e-9)
        pts = self.pts[i - 1] + (self.pts[i] - self.pts[i - 1]) * w
        hw = float(self.hws[i - 1] + (self.hws[i] - self.hws[i - 1]) * w)
        zf = float(c.zfrac(self.zmin, self.zmax))
        if zf <= 0:
            return
        inv_px = 1.0 / c.px
        geos = []
        for (xa, ya), (xb, yb) in zip(pts[:-1], pts[1:]):
            win = c.bbox((xa + xb) / 2, (ya + yb) / 2, math.hypot(xb - xa, yb - ya) / 2 + hw)
            if win is None:
                continue
            dx, dy = xb - xa, yb - ya
            u = c.xt[win] - xa
            v = c.yt[win] - ya
            t = np.clip((u * dx + v * dy) / max(dx * dx + dy * dy, 1e-9), 0.0, 1.0)
            geos.append((win, np.hypot(u - t * dx, v - t * dy) - hw))
        for inset, hu, tex in self.layers:  # layer by layer, so the marrow runs through the joints
            if inset < hw:
                for win, edge in geos:
                    c.composite(win, np.clip(0.5 - (edge + inset) * inv_px, 0.0, 1.0) * zf, hu, tex)
        if self.label and self.zmin <= c.z <= self.zmax:
            for win, edge in geos:
                c.label(win, edge <= 0, self.label)


# ================================================================================================
# Patient: spine layout, torso shape
# ================================================================================================


@dataclass
class _Vertebra:
    name: str
    label: int
    region: str  # "C", "T", "L"
    index: int  # 1-based within the region
    height: float  # body height (mm)
    disc: float  # disc below (mm)
    w: float  # body half-width (mm)
    d: float  # body half-depth (mm)
    rib: bool
    z_top: float = 0.0
    z_bot: float = 0.0
    x: float = 0.0
    y: float = 0.0
    tilt: float = 0.0

    @property
    def z_mid(self) -> float:
        return (self.z_top + self.z_bot) / 2


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _build_spine(rng: np.random.Generator, variant: str, scale: float) -> tuple[list[_Vertebra], list[float]]:
    """Vertebrae from C1 down (z of C1 top = 0, z decreasing caudally) and the sacral segment lengths."""
    n_thoracic = {"11_ribs": 11, "13_ribs": 13}.get(variant, 12)
    n_lumbar = {"lumbarised": 6, "sacralised": 4}.get(variant, 5)
    verts: list[_Vertebra] = []
    for n in range(1, 8):
        verts.append(_Vertebra(f"C{n}", VERSE_IDS[f"C{n}"], "C", n, 13.0 + 0.3 * n, 4.5, 9.0 + 0.8 * n, 7.5 + 0.35 * n, False))
    for n in range(1, n_thoracic + 1):
        f = (n - 1) / (n_thoracic - 1)
        verts.append(_Vertebra(f"T{n}", VERSE_IDS[f"T{n}"], "T", n, 17.5 + 7.0 * f, 4.0 + 3.5 * f, 14.0 + 7.0 * f, 8.5 + 6.0 * f, True))
    for n in range(1, n_lumbar + 1):
        f = min((n - 1) / 4.0, 1.0)
        verts.append(_Vertebra(f"L{n}", VERSE_IDS[f"L{n}"], "L", n, 26.5 + 3.0 * f, 9.0 + 3.0 * f, 23.0 + 3.5 * f, 16.0 + 2.0 * f, False))
    verts[-1].disc = 10.0
    z = 0.0
    for v in verts:
        jitter = 1.0 + 0.04 * float(rng.standard_normal())
        v.height *= scale * jitter
        v.disc *= scale * (1.0 + 0.08 * float(rng.standard_normal()))
        v.w *= scale
        v.d *= scale
        v.z_top, v.z_bot = z, z - v.height
        z = v.z_bot - v.disc
    segments = {"lumbarised": [22.0, 19.0, 16.0, 13.0], "sacralised": [27.0, 24.0, 22.0, 19.0, 16.0, 13.0]}.get(
        variant, [24.0, 22.0, 19.0, 16.0, 13.0])
    return verts, [s * scale for s in segments]


# Torso keyframe columns: cavity half-width a, anterior/posterior half-depths, superellipse
# exponents, lateral/anterior muscle wall, spine offset (vertebral centre = -bp + off),
# erector spinae (lateral offset, depth behind the body, half-axes), fat scale.
_TORSO_COLUMNS = ("a", "ba", "bp", "na", "np", "m_lat", "m_ant", "off", "ex", "e_off", "ea", "eb", "fat")


class _Body:
    """Torso geometry as functions of z (mm): cavity, muscle wall, fat, spine line, erector spinae."""

    def __init__(self, zs: list[float], rows: list[tuple[float, ...]], spine_x: tuple[float, float, float], d_of_z: tuple[np.ndarray, np.ndarray],
                 fat: tuple[float, float, float]):
        order = np.argsort(zs)
        self.zs = np.asarray(zs, dtype=np.float64)[order]
        self.table = np.asarray(rows, dtype=np.float64)[order]
        self.scol_amp, self.scol_len, self.scol_phase = spine_x
        self.d_z, self.d_val = d_of_z
        self.fat_ant, self.fat_lat, self.fat_post = fat

    def get(self, name: str, z: Any) -> Any:
        return np.interp(z, self.zs, self.table[:, _TORSO_COLUMNS.index(name)])

    def spine_y(self, z: Any) -> Any:
        return -self.get("bp", z) + self.get("off", z)

    def spine_x(self, z: Any) -> Any:
        return self.scol_amp * np.sin(2 * np.pi * np.asarray(z) / self.scol_len + self.scol_phase)

    def body_half_depth(self, z: Any) -> Any:
        return np.interp(z, self.d_z, self.d_val)

    def back_depth(self, z: Any) -> Any:
        """Posterior muscle thickness behind the cavity so that the erector spinae fit inside the skin."""
        return -self.get("off", z) + self.body_half_depth(z) + self.get("e_off", z) + self.get("eb", z) + 4.0

    def outline(self, z: Any) -> tuple[Any, Any, Any]:
        """Skin half-width, anterior and posterior half-depths (mm)."""
        f = self.get("fat", z)
        a = self.get("a", z) + self.get("m_lat", z) + f * self.fat_lat
        ba = self.get("ba", z) + self.get("m_ant", z) + f * self.fat_ant
        bp = self.get("bp", z) + self.back_depth(z) + f * self.fat_post
        return a, ba, bp


def _superellipse_radius(c: _Canvas, a: float, ba: float, bp: float, na: float, np_: float) -> np.ndarray:
    """Radius (mm) of an asymmetric superellipse at each of the canvas's angle bins."""
    sn = c.bin_sin
    b = np.where(sn > 0, ba, bp)
    n = np.where(sn > 0, na, np_)
    return (np.abs(c.bin_cos / a) ** n + np.abs(sn / b) ** n) ** (-1.0 / n)


class _Torso(_Item):
    """Skin, subcutaneous fat, muscle wall and the body cavity (filled with visceral fat)."""

    def __init__(self, body: _Body, hu: dict[str, float], zmin: float, zmax: float):
        self.body, self.hu, self.zmin, self.zmax = body, hu, zmin, zmax

    def paint(self, c: _Canvas) -> None:
        b, z = self.body, c.z
        g = {name: float(b.get(name, z)) for name in _TORSO_COLUMNS}
        wall_p = g["bp"] + 10.0
        a_s, ba_s, bp_s = (float(v) for v in b.outline(z))
        inv_px = 1.0 / c.px
        layers = [
            ((a_s, ba_s, bp_s), self.hu["skin"]),
            ((a_s - 2.0, ba_s - 2.0, bp_s - 2.0), self.hu["fat"]),
            ((g["a"] + g["m_lat"], g["ba"] + g["m_ant"], wall_p), self.hu["muscle"]),
            ((g["a"], g["ba"], g["bp"]), self.hu["visceral_fat"]),
        ]
        for n, ((a, ba, bp), hu) in enumerate(layers):
            radius = _superellipse_radius(c, a, ba, bp, g["na"], g["np"])[c.theta_bin]
            alpha = np.clip(0.5 - (c.r - radius) * inv_px, 0.0, 1.0)
            c.img += alpha * (hu - c.img)
            if n == len(layers) - 1:
                c.cav[...] = alpha
        # fat texture: faint septa everywhere, small vessels / nodes in the visceral fat
        c.img += 6.0 * c.tex + c.cav * np.clip((c.tex - 1.9) * 3.0, 0.0, 1.0) * (self.hu["muscle"] - self.hu["visceral_fat"])


class _Lungs(_Item):
    """Aerated lung: the cavity above the diaphragm and below the apices, with vessel markings."""

    def __init__(self, dome: _Dome, z_apex: float, hu: float):
        self.dome, self.z_apex, self.hu = dome, z_apex, hu
        self.zmin, self.zmax = dome.z_recess - 5.0, z_apex

    def paint(self, c: _Canvas) -> None:
        zf = float(c.zfrac(-1e9, self.z_apex))
        if zf <= 0:
            return
        alpha = c.cav * zf
        if c.z - c.thickness < self.dome.top:
            zd = self.dome.height(c.xt, c.yt)
            alpha = alpha * np.clip((c.z - zd) / c.thickness + 0.5, 0.0, 1.0)
        tex = c.tex
        value = self.hu + 25.0 * tex + 900.0 * np.clip((tex - 1.8) * 2.0, 0.0, 1.0)
        c.img += alpha * (value - c.img)


class _Table(_Item):
    """Patient table: a curved carbon shell over foam, fixed in the scanner frame (posterior)."""

    def __init__(self, y_top: float, hu: float, zmin: float, zmax: float):
        self.y_top, self.hu, self.zmin, self.zmax = y_top, hu, zmin, zmax

    def paint(self, c: _Canvas) -> None:
        top = self.y_top + (c.scan_x - c.ox) ** 2 / 1800.0  # sides curve up (radius ~900 mm)
        depth = top - c.scan_y  # mm below the table top surface
        inv_px = 1.0 / c.px
        shell = np.clip(np.minimum(depth + 0.5 * c.px, 3.0 - depth) * inv_px + 0.5, 0.0, 1.0)
        foam = np.clip(np.minimum(depth - 3.0, 32.0 - depth) * inv_px + 0.5, 0.0, 1.0)
        c.img += foam * (-900.0 - c.img)
        c.img += shell * (self.hu - c.img)


# ================================================================================================
# Anatomy
# ================================================================================================


def _ellipsoid(zc: float, hz: float, cx: float, cy: float, a: float, b: float, ang: float = 0.0,
               shift: tuple[float, float] = (0.0, 0.0), n: int = 7) -> list[tuple[float, float, float, float, float, float]]:
    """Keyframes of an ellipsoid (half-height ``hz``) whose centre moves by ``shift`` from bottom to top."""
    keys = []
    for t in np.linspace(-1.0, 1.0, n):
        s = math.sqrt(max(1.0 - t * t, 0.0)) if abs(t) < 1 else 0.25
        keys.append((zc + t * hz, cx + shift[0] * t / 2, cy + shift[1] * t / 2, max(a * s, 0.5), max(b * s, 0.5), ang))
    return keys


def _tube(points: list[tuple[float, float, float]], a: float, b: float | None = None) -> list[tuple[float, float, float, float, float, float]]:
    """Keyframes of a roughly vertical tube through ``(x, y, z)`` points."""
    return [(z, x, y, a, b if b is not None else a, 0.0) for x, y, z in points]


class _Anatomy:
    """Builds the ordered list of items for one patient."""

    def __init__(self, rng: np.random.Generator, variant: str):
        self.rng = rng
        self.variant = variant
        self.params: dict[str, Any] = {"variant": variant}
        p = self.params
        scale = _u(rng, 0.9, 1.1)
        p["scale_z"] = scale
        self.verts, self.sacral_segments = _build_spine(rng, variant, scale)
        self.by_name = {v.name: v for v in self.verts}
        self.thoracic = [v for v in self.verts if v.region == "T"]
        self.lumbar = [v for v in self.verts if v.region == "L"]
        p["scale_x"], p["scale_y"] = _u(rng, 0.86, 1.14), _u(rng, 0.85, 1.15)
        p["fat"] = _u(rng, 0.0, 1.0) ** 1.3
        p["visceral_fat"] = min(1.0, max(0.0, p["fat"] + _u(rng, -0.35, 0.35)))
        p["lordosis_mm"], p["kyphosis_mm"] = _u(rng, -6.0, 10.0), _u(rng, -5.0, 8.0)
        p["scoliosis_mm"], p["scoliosis_wavelength_mm"], p["scoliosis_phase"] = _u(rng, 0.0, 6.0), _u(rng, 250.0, 500.0), _u(rng, 0, 2 * math.pi)
        p["roll_deg"] = _u(rng, -4.0, 4.0)
        p["contrast"] = str(rng.choice(["none", "venous", "arterial"], p=[0.45, 0.4, 0.15]))
        p["oral_contrast"] = bool(rng.random() < 0.2)
        self.hu = self._draw_hu()
        self.body = self._build_body()
        self._place_vertebrae()
        self.items: list[_Item] = []

    # --- tissue values -------------------------------------------------------------------------
    def _draw_hu(self) -> dict[str, float]:
        rng, contrast = self.rng, self.params["contrast"]
        fat = _u(rng, -115.0, -85.0)
        hu = {
            "skin": _u(rng, 0.0, 40.0), "fat": fat, "visceral_fat": fat + _u(rng, -5.0, 15.0),
            "muscle": _u(rng, 38.0, 58.0), "cortex": _u(rng, 650.0, 950.0), "cancellous": _u(rng, 120.0, 280.0),
            "disc": _u(rng, 70.0, 100.0), "csf": _u(rng, 5.0, 15.0), "cord": _u(rng, 30.0, 40.0), "lung": _u(rng, -880.0, -820.0),
            "cartilage": _u(rng, 90.0, 220.0), "fluid": _u(rng, 0.0, 15.0), "bowel_wall": 40.0, "marrow_fat": _u(rng, -60.0, 10.0),
        }
        blood = _u(rng, 35.0, 50.0)
        if contrast == "none":
            hu.update(artery=blood, vein=blood, liver=_u(rng, 50.0, 68.0), spleen=_u(rng, 40.0, 52.0), kidney_cortex=_u(rng, 28.0, 38.0),
                      kidney_medulla=_u(rng, 25.0, 35.0), pancreas=_u(rng, 35.0, 48.0), myocardium=_u(rng, 40.0, 50.0), heart_blood=blood)
        elif contrast == "venous":
            hu.update(artery=_u(rng, 140.0, 200.0), vein=_u(rng, 120.0, 180.0), liver=_u(rng, 95.0, 130.0), spleen=_u(rng, 105.0, 135.0),
                      kidney_cortex=_u(rng, 150.0, 200.0), kidney_medulla=_u(rng, 120.0, 170.0), pancreas=_u(rng, 90.0, 120.0),
                      myocardium=_u(rng, 90.0, 120.0), heart_blood=_u(rng, 130.0, 180.0))
        else:
            hu.update(artery=_u(rng, 250.0, 380.0), vein=_u(rng, 60.0, 110.0), liver=_u(rng, 65.0, 85.0), spleen=_u(rng, 90.0, 140.0),
                      kidney_cortex=_u(rng, 180.0, 260.0), kidney_medulla=_u(rng, 50.0, 80.0), pancreas=_u(rng, 100.0, 140.0),
                      myocardium=_u(rng, 100.0, 140.0), heart_blood=_u(rng, 220.0, 350.0))
        hu["bowel_content"] = _u(rng, 200.0, 300.0) if self.params["oral_contrast"] else hu["fluid"] + 10.0
        return hu

    # --- torso shape and spine line -----------------------------------------------------------
    def _build_body(self) -> _Body:
        p, rng, v = self.params, self.rng, self.by_name
        sx, sy = p["scale_x"], p["scale_y"]
        vf = 1.0 + 0.12 * p["visceral_fat"]
        last_t, lum = self.thoracic[-1], self.lumbar
        first_l, last_l = lum[0], lum[-1]
        z_s1 = last_l.z_bot - last_l.disc
        self.z_s1 = z_s1
        self.z_fh = z_s1 - _u(rng, 85.0, 105.0) * p["scale_z"]
        self.z_crest = last_l.z_top + _u(rng, -5.0, 15.0)
        mid_l = lum[len(lum) // 2]
        lord = p["lordosis_mm"]
        kyph = p["kyphosis_mm"]
        t_mid = self.thoracic[len(self.thoracic) // 2]
        # (z, a, ba, bp, na, np, m_lat, m_ant, off, ex, e_off, ea, eb, fat)
        keys = [
            (v["C3"].z_mid, 38, 28, 4, 2.0, 2.2, 20, 5, -10, 22, 30, 22, 24, 0.35),
            (v["C7"].z_mid, 46, 30, 6, 2.0, 2.2, 30, 6, -6, 23, 32, 24, 24, 0.45),
            (v["T1"].z_mid, 60, 38, 35, 2.0, 2.4, 95, 25, 26, 24, 34, 20, 18, 0.6),
            (v["T3"].z_mid, 95, 62, 55, 2.1, 2.6, 62, 30, 26, 25, 36, 20, 16, 0.7),
            (t_mid.z_mid, 120 * vf ** 0.3, 80, 65, 2.2, 2.8, 20, 16, 24 - kyph, 28, 36, 24, 18, 0.75),
            (last_t.z_mid, 128 * vf ** 0.6, 86 * vf ** 0.6, 62, 2.3, 2.8, 11, 12, 23, 29, 38, 27, 21, 0.9),
            (first_l.z_mid, 124 * vf, 84 * vf, 56, 2.4, 2.8, 10, 10, 26 + 0.4 * lord, 30, 40, 29, 23, 1.0),
            (mid_l.z_mid, 122 * vf, 82 * vf, 48, 2.4, 2.8, 10, 10, 30 + lord, 31, 40, 30, 24, 1.0),
            (last_l.z_mid, 130 * vf, 80 * vf, 42, 2.4, 2.8, 16, 10, 18 + 0.4 * lord, 29, 40, 28, 22, 1.05),
            (z_s1 - 30, 112 * vf, 78 * vf, 12, 2.3, 2.8, 45, 12, -16, 24, 30, 18, 12, 1.1),
            (self.z_fh, 72, 70, 8, 2.2, 2.6, 95, 25, -22, 22, 26, 14, 10, 1.1),
            (self.z_fh - 80, 62, 62, 6, 2.2, 2.6, 100, 30, -24, 22, 26, 14, 10, 1.1),
        ]
        rows = []
        zs = []
        for z, a, ba, bp, na, np_, m_lat, m_ant, off, ex, e_off, ea, eb, fat in keys:
            zs.append(z)
            rows.append((a * sx, ba * sy, bp * sy, na, np_, m_lat * sx, m_ant * sy, off, ex, e_off, ea, eb, fat))
        fat_level = p["fat"]
        fat = (6.0 + 60.0 * fat_level * _u(rng, 0.7, 1.3), 6.0 + 40.0 * fat_level * _u(rng, 0.7, 1.3), 5.0 + 22.0 * fat_level * _u(rng, 0.7, 1.3))
        p["subcutaneous_fat_mm"] = [round(f, 1) for f in fat]
        d_z = [vv.z_mid for vv in reversed(self.verts)]
        d_val = [vv.d for vv in reversed(self.verts)]
        return _Body(zs, rows, (p["scoliosis_mm"], p["scoliosis_wavelength_mm"], p["scoliosis_phase"]), (np.array(d_z), np.array(d_val)), fat)

    def _place_vertebrae(self) -> None:
        b = self.body
        for v in self.verts:
            v.x = float(b.spine_x(v.z_mid))
            v.y = float(b.spine_y(v.z_mid))
            dydz = float(b.spine_y(v.z_mid + 5.0) - b.spine_y(v.z_mid - 5.0)) / 10.0
            v.tilt = -float(np.clip(dydz, -0.6, 0.6))

    # --- helpers -----------------------------------------------------------------------------
    def vert(self, name: str) -> _Vertebra:
        return self.by_name[name]

    def add(self, item: _Item) -> None:
        self.items.append(item)

    def bone(self) -> list[tuple[float, float, float]]:
        """Cortex + cancellous layers for a :class:`_Bar` or :class:`_Polyline` bone."""
        return [(0.0, self.hu["cortex"], 0.0), (1.6, self.hu["cancellous"], 35.0)]

    # --- everything, in painting order ----------------------------------------------------------
    def build(self, z_lo: float, z_hi: float, pose_rng: np.random.Generator, arms_down: bool, table: tuple[float, float] | None) -> list[_Item]:
        """All items in painting order for a scan spanning ``[z_lo, z_hi]`` (mm).

        ``pose_rng`` draws the arms (so that positioning never changes the anatomy drawn from the
        seed); ``table`` is ``(top y in scanner mm, HU)`` or None.
        """
        self.arms_down = arms_down
        if table is not None:
            self.add(_Table(table[0], table[1], -1e9, 1e9))
        self.add(_Torso(self.body, self.hu, -1e9, 1e9))
        if arms_down:
            self._arms(pose_rng, z_lo)
        self._abdominal_organs()
        self._chest()
        self._neck()
        self._vessels()
        self._retroperitoneum()
        self._spine()
        self._ribs()
        self._chest_bones()
        self._sacrum()
        self._pelvis()
        return self.items

    def _arms(self, rng: np.random.Generator, z_lo: float) -> None:
        hu, b = self.hu, self.body
        top = self.vert("T1").z_mid
        elbow = self.lumbar[0].z_mid + _u(rng, -20.0, 20.0)
        for side in (1, -1):
            gap = _u(rng, 5.0, 30.0)
            zs = np.linspace(min(z_lo, top) - 10, top, 6)
            keys_out, keys_bone = [], []
            for z in zs:
                a_s = float(b.outline(z)[0])
                r = 42.0 if z > elbow else 36.0
                x = side * (a_s + gap + r)
                keys_out.append((float(z), x, 0.0, r, r * 1.1, 0.0))
                keys_bone.append((float(z), x + side * 4, -4.0, 11.0 if z > elbow else 8.0, 11.0 if z > elbow else 8.0, 0.0))
            self.add(_Blob(keys_out, [(0.0, hu["skin"], 0.0), (2.0, hu["fat"], 0.0), (8.0, hu["muscle"], 0.0)]))
            self.add(_Blob(keys_bone, [(0.0, hu["cortex"], 0.0), (3.0, hu["marrow_fat"], 0.0)]))

    # --- abdomen ---------------------------------------------------------------------------------
    def _abdominal_organs(self) -> None:
        rng, hu, b = self.rng, self.hu, self.body
        last_t = self.thoracic[-1]
        t_above = self.thoracic[-3]
        l1, l2 = self.lumbar[0], self.lumbar[1]
        a_ref = float(b.get("a", last_t.z_mid))
        ba_ref = float(b.get("ba", last_t.z_mid))
        bp_ref = float(b.get("bp", last_t.z_mid))
        y_sp = float(b.spine_y(last_t.z_mid))
        z_right = t_above.z_top + _u(rng, -5.0, 20.0)
        self.dome = _Dome(z_right=z_right, z_left=z_right - _u(rng, 5.0, 20.0), z_recess=last_t.z_mid + _u(rng, -15.0, 10.0),
                          x_peak=0.45 * a_ref, y_peak=_u(rng, -5.0, 15.0),
                          scale_x=a_ref, scale_ant=ba_ref, scale_post=bp_ref + 20.0, drop_lat=_u(rng, 35.0, 55.0), drop_ant=_u(rng, 25.0, 45.0))
        self.params["diaphragm_mm"] = {"right": round(self.dome.z_right, 1), "left": round(self.dome.z_left, 1), "recess": round(self.dome.z_recess, 1)}
        liver_tip = l2.z_top + _u(rng, -25.0, 10.0)
        self.params["liver_tip_mm"] = round(liver_tip, 1)
        zt = z_right + 10.0

        def at(z: float, fx: float, fy: float, fa: float, fb: float, ang: float = 0.0) -> tuple[float, float, float, float, float, float]:
            a = float(b.get("a", z))
            bm = float((b.get("ba", z) + b.get("bp", z)) / 2)
            return (z, fx * a, fy * bm, fa * a, fb * bm, ang)

        lv = [(0.0, hu["liver"], 5.0, 0.0)]
        self.add(_Blob([at(zt, 0.45, 0.05, 0.6, 0.8), at(last_t.z_mid, 0.42, 0.02, 0.6, 0.78), at(l1.z_mid, 0.55, 0.0, 0.42, 0.55, 0.3),
                        at(liver_tip, 0.68, 0.15, 0.12, 0.18, 0.5)], lv, clip=True, dome=1))
        self.add(_Blob([at(zt, -0.05, 0.45, 0.55, 0.35, 0.15), at(last_t.z_top, -0.1, 0.45, 0.5, 0.3, 0.2), at(last_t.z_bot - 5, 0.05, 0.5, 0.2, 0.15, 0.2)],
                       lv, clip=True, dome=1))
        # intrahepatic vessels (darker without contrast, brighter with)
        vessel = hu["vein"] if self.params["contrast"] != "none" else hu["liver"] - 22.0
        confluence = (0.15 * a_ref, y_sp + 40.0, z_right - 28.0)
        for end_x, end_y in ((0.62, 0.1), (0.45, 0.55), (-0.1, 0.6)):  # hepatic veins radiating from the IVC
            end = (end_x * a_ref, end_y * ba_ref, confluence[2] - _u(rng, 5.0, 20.0))
            self.add(_Bar(confluence, end, 5.5, 2.5, 5.0, [(0.0, vessel, 0.0)]))
        porta = (0.05 * a_ref, y_sp + 45.0, l1.z_top + _u(rng, 5.0, 20.0))
        for end_x, end_y, dz in ((0.5, 0.05, 15.0), (0.35, 0.45, 25.0), (0.15, 0.55, 10.0)):  # portal branches
            self.add(_Bar(porta, (end_x * a_ref, end_y * ba_ref, porta[2] + dz), 6.0, 2.5, 5.0, [(0.0, vessel, 0.0)]))
        if rng.random() < 0.6:  # gallbladder
            self.add(_Blob(_ellipsoid(l1.z_top - 5.0, _u(rng, 20.0, 35.0), 0.25 * a_ref, 0.45 * ba_ref, 16.0, 13.0, 0.5),
                           [(0.0, hu["fluid"] + 5.0, 0.0, 0.0)], clip=True, dome=1))
        # spleen
        zc = (self.thoracic[-2].z_mid + l1.z_top) / 2 + _u(rng, -10.0, 10.0)
        self.add(_Blob(_ellipsoid(zc, _u(rng, 38.0, 55.0), -(a_ref - 38.0), y_sp + 8.0, _u(rng, 38.0, 50.0), _u(rng, 16.0, 22.0), -0.9),
                       [(0.0, hu["spleen"], 4.0, 0.0)], clip=True, dome=1))
        # stomach with an air-fluid level
        zc = last_t.z_bot + _u(rng, -10.0, 20.0)
        gas = _u(rng, 0.35, 0.9)
        self.add(_Blob(_ellipsoid(zc, _u(rng, 50.0, 70.0), -0.42 * a_ref, 0.35 * ba_ref, _u(rng, 38.0, 55.0), _u(rng, 28.0, 40.0), 0.5, shift=(25.0, -10.0)),
                       [(0.0, hu["bowel_wall"], 0.0, 0.0), (4.0, hu["bowel_content"], 10.0, 2.0)], clip=True, dome=1, gas=(gas, _AIR)))
        # pancreas
        y_pan = float(b.spine_y(l1.z_mid)) + l1.d + 38.0
        self.add(_Blob(_ellipsoid(l1.z_mid - 8.0, 18.0, -0.1 * a_ref, y_pan, 62.0, 11.0, 0.3), [(0.0, hu["pancreas"], 4.0, 0.0)], clip=True))
        self._bowel()
        # bladder and rectum
        y_fh = self.y_fh
        if rng.random() < 0.85:
            hz = _u(rng, 20.0, 45.0)
            self.add(_Blob(_ellipsoid(self.z_fh - 10.0 + hz * 0.6, hz, 0.0, y_fh + 45.0, _u(rng, 30.0, 50.0), _u(rng, 22.0, 35.0)),
                           [(0.0, hu["bowel_wall"], 0.0, 0.0), (3.0, hu["fluid"], 0.0, 0.0)], clip=True))
        self.add(_Blob(_tube([(0.0, self.y_sacrum_front(self.z_s1 - 70.0) + 18.0, self.z_s1 - 70.0),
                              (0.0, self.y_sacrum_front(self.z_fh - 40.0) + 20.0, self.z_fh - 40.0)], 17.0, 14.0),
                       [(0.0, hu["bowel_wall"], 0.0, 0.0), (3.0, -250.0, 220.0, 0.0)], gas=(0.3, _AIR)))

    @property
    def y_fh(self) -> float:
        return float(self.body.spine_y(self.lumbar[-1].z_mid)) + 45.0

    def y_sacrum_front(self, z: float) -> float:
        return float(self.body.spine_y(self.lumbar[-1].z_mid)) - 10.0 - 0.6 * max(self.z_s1 - z, 0.0) * 0.5

    def _bowel(self) -> None:
        rng, hu, b = self.rng, self.hu, self.body
        l1 = self.lumbar[0]
        z_top = l1.z_mid + _u(rng, -10.0, 10.0)
        z_bot = self.z_fh + 25.0
        content = hu["bowel_content"]
        # colon: ascending (right), transverse (anterior, sagging), descending (left)
        flex_r = l1.z_bot - _u(rng, 0.0, 25.0)
        flex_l = l1.z_top + _u(rng, -10.0, 15.0)
        a_mid = float(b.get("a", self.lumbar[2].z_mid))
        y_s = float(b.spine_y(self.lumbar[2].z_mid))
        stool = (2.5, -110.0, 110.0, 0.0)
        colon_layers = [(0.0, hu["bowel_wall"], 0.0, 0.0), stool]
        r_col = _u(rng, 18.0, 26.0)
        self.add(_Blob(_tube([(0.68 * a_mid, y_s + 25.0, self.z_crest - 25.0), (0.66 * a_mid, y_s + 20.0, flex_r)], r_col, r_col * 0.9), colon_layers,
                       gas=(_u(rng, -0.3, 0.6), _AIR), clip=True))
        self.add(_Blob(_tube([(-0.72 * a_mid, y_s + 5.0, self.z_crest - 10.0), (-0.74 * a_mid, y_s + 5.0, flex_l)], r_col * 0.7, r_col * 0.65),
                       colon_layers, gas=(_u(rng, -0.3, 0.8), _AIR), clip=True))
        z_tc = self.lumbar[1].z_mid + _u(rng, -30.0, 15.0)
        ba = float(b.get("ba", z_tc))
        pts = [(0.66 * a_mid, y_s + 30.0, flex_r + 10), (0.3 * a_mid, 0.55 * ba, z_tc), (-0.3 * a_mid, 0.55 * ba, z_tc + 5.0), (-0.72 * a_mid, y_s + 10.0, flex_l)]
        r_tc = r_col * 0.8
        for p0, p1 in zip(pts[:-1], pts[1:]):
            self.add(_Bar(p0, p1, r_tc, r_tc, r_tc * 0.9, [(0.0, hu["bowel_wall"], 0.0), stool[:3]]))
        # small bowel loops: collapsed (soft tissue), fluid-filled, gas-containing; cut at any angle
        n = int(_u(rng, 60.0, 95.0) * (z_top - z_bot) / 200.0)
        collapsed = hu["bowel_wall"] - 5.0
        for _ in range(max(n, 0)):
            z = _u(rng, z_bot, z_top)
            a = float(b.get("a", z))
            ba = float(b.get("ba", z))
            ys = float(b.spine_y(z)) + 25.0
            y = _u(rng, ys, 0.85 * ba)
            half = a * 0.72 * math.sqrt(max(1.0 - (y / ba) ** 2, 0.1))
            x = _u(rng, -half, half)
            ra = _u(rng, 6.0, 16.0)
            rb = ra * _u(rng, 0.45, 1.0)
            kind = rng.random()
            if kind < 0.4:
                layers, gas = [(0.0, collapsed, 5.0, 0.0)], None
            elif kind < 0.55:  # colon segment with stool
                layers, gas = [(0.0, hu["bowel_wall"], 0.0, 0.0), stool], (_u(rng, 0.0, 1.0), _AIR)
            else:
                layers = [(0.0, hu["bowel_wall"], 0.0, 0.0), (2.2, content, 6.0, 0.0)]
                gas = (_u(rng, -0.9, 0.6), _AIR) if kind > 0.85 else None
            self.add(_Blob(_ellipsoid(z, _u(rng, 8.0, 35.0), x, y, ra, rb, _u(rng, 0, math.pi), shift=(_u(rng, -25, 25), _u(rng, -20, 20)), n=5),
                           layers, gas=gas, clip=True))

    # --- chest -----------------------------------------------------------------------------------
    def _chest(self) -> None:
        rng, hu, b = self.rng, self.hu, self.body
        t1 = self.vert("T1")
        z_apex = t1.z_top + _u(rng, 10.0, 25.0)
        self.add(_Lungs(self.dome, z_apex, hu["lung"]))
        # mediastinum: from the apex down to the heart, between spine and sternum
        keys = []
        for name, half_w in (("T1", 22.0), ("T3", 28.0), ("T5", 36.0), ("T7", 40.0)):
            v = self.vert(name)
            front = v.y + v.d
            ba = float(b.get("ba", v.z_mid))
            keys.append((v.z_mid, v.x - 6.0, (front + ba) / 2, half_w, (ba - front) / 2 + 4.0, 0.0))
        keys.append((self.dome.z_left - 15.0, keys[-1][1], keys[-1][2], 30.0, keys[-1][4] * 0.8, 0.0))
        self.add(_Blob(keys, [(0.0, hu["visceral_fat"] + 15.0, 0.0, 0.0)]))
        # heart sits on the diaphragm, apex to the left and anterior
        t8 = self.vert("T8")
        hz = _u(rng, 50.0, 62.0)
        zc = self.dome.z_left - 12.0 + hz
        y_h = t8.y + t8.d + _u(rng, 62.0, 75.0)
        self.heart = (zc, hz, y_h)
        a_h, b_h = _u(rng, 70.0, 85.0), _u(rng, 55.0, 65.0)
        self.add(_Blob(_ellipsoid(zc, hz, t8.x - 28.0, y_h, a_h, b_h, -0.6),
                       [(0.0, hu["myocardium"], 0.0, 0.0), (10.0, hu["heart_blood"], 0.0, 3.0)], clip=True))
        # interventricular septum: a wall between the right (anterior) and left (posterior) ventricles
        self.add(_Bar((t8.x - 28.0 - 0.5 * a_h, y_h - 0.55 * b_h, zc - 0.2 * hz), (t8.x - 28.0 + 0.3 * a_h, y_h + 0.5 * b_h, zc - 0.2 * hz),
                      4.0, 4.0, 0.55 * hz, [(0.0, hu["myocardium"], 0.0)]))
        # trachea, carina, main bronchi
        t5 = self.vert("T5")
        z_car = t5.z_top + _u(rng, -12.0, 8.0)
        self.z_carina = z_car
        top = self.verts[0].z_top + 10.0
        pts = []
        for v in self.verts:
            if v.z_mid < z_car:
                break
            pts.append((v.x, v.y + v.d + (16.0 if v.region == "C" else 20.0) + 9.0, v.z_mid))
        pts = [(pts[0][0], pts[0][1], top)] + pts + [(t5.x, t5.y + t5.d + 30.0, z_car)]
        air = [(0.0, hu["muscle"] - 10.0, 0.0, 0.0), (2.0, _AIR, 0.0, 0.0)]
        self.add(_Blob(_tube(pts, 9.0, 8.0), air))
        for side in (1, -1):
            end = (t5.x + side * _u(rng, 40.0, 50.0), t5.y + t5.d + 20.0, z_car - _u(rng, 20.0, 35.0))
            self.add(_Bar((t5.x, t5.y + t5.d + 30.0, z_car), end, 7.0, 5.5, 6.0, [(0.0, hu["muscle"] - 10.0, 0.0), (1.8, _AIR, 0.0)]))
        # oesophagus, from the neck to the stomach
        pts = [(v.x - 6.0 - (8.0 if v.region != "C" and v.index > 6 else 0.0), v.y + v.d + 7.0, v.z_mid) for v in self.verts
               if v.z_mid > self.thoracic[-1].z_mid]
        pts = [(pts[0][0], pts[0][1], top)] + pts
        eso = [(0.0, hu["muscle"] - 5.0, 0.0, 0.0)] + ([(5.0, _AIR, 0.0, 0.0)] if rng.random() < 0.4 else [])
        self.add(_Blob(_tube(pts, 8.0, 6.0), eso))

    def _neck(self) -> None:
        rng, hu = self.rng, self.hu
        c6, t1 = self.vert("C6"), self.vert("T1")
        y_tr = c6.y + c6.d + 25.0
        for side in (1, -1):
            self.add(_Blob(_ellipsoid((c6.z_top + t1.z_mid) / 2, (c6.z_top - t1.z_mid) / 2, side * 19.0, y_tr - 2.0, 9.0, 15.0, side * 0.4),
                           [(0.0, _u(rng, 80.0, 120.0) + (40.0 if self.params["contrast"] != "none" else 0.0), 0.0, 0.0)]))
            top = self.verts[0].z_top + 10.0
            for dx, dy, r, val in ((27.0, -6.0, 4.5, hu["artery"]), (38.0, -2.0, 6.5, hu["vein"])):
                self.add(_Blob(_tube([(side * dx, y_tr + dy, top), (side * dx, y_tr + dy - 5.0, t1.z_mid)], r), [(0.0, val, 0.0, 0.0)]))

    def _vessels(self) -> None:
        rng, hu, b = self.rng, self.hu, self.body
        art, vein = hu["artery"], hu["vein"]
        t4 = self.vert("T4")
        zc_h, hz_h, y_h = self.heart
        # descending + abdominal aorta, bifurcating near L4
        l4 = self.lumbar[3] if len(self.lumbar) >= 5 else self.lumbar[-1]
        z_bif = l4.z_mid + _u(rng, -12.0, 12.0)
        self.params["aortic_bifurcation_mm"] = round(z_bif, 1)
        pts = []
        z_arch = t4.z_top + _u(rng, 0.0, 10.0)
        for v in self.verts:
            if v.z_mid > z_arch or v.z_mid < z_bif:
                continue
            if v.region == "T" and v.index < len(self.thoracic) - 1:
                pts.append((v.x - v.w - 6.0, v.y + 0.3 * v.d, v.z_mid))
            else:
                pts.append((v.x - 8.0, v.y + v.d + 13.0, v.z_mid))
        pts = [(t4.x - t4.w - 8.0, t4.y + 0.3 * t4.d, z_arch)] + pts + [(pts[-1][0], pts[-1][1], z_bif)]
        self.add(_Blob(_tube(pts, 12.0), [(0.0, art, 0.0, 0.0)]))
        # ascending aorta and arch
        asc = (t4.x + 14.0, y_h + 10.0)
        self.add(_Blob(_tube([(asc[0], asc[1], zc_h + 0.3 * hz_h), (asc[0] - 3.0, asc[1] - 10.0, z_arch)], 15.0), [(0.0, art, 0.0, 0.0)]))
        self.add(_Bar((asc[0] - 3.0, asc[1] - 10.0, z_arch), (t4.x - t4.w - 8.0, t4.y + 0.3 * t4.d, z_arch - 4.0), 13.0, 12.0, 12.0, [(0.0, art, 0.0)]))
        # pulmonary trunk and arteries
        z_pa = self.z_carina - _u(rng, 8.0, 18.0)
        trunk = (t4.x - 18.0, y_h + 5.0)
        pulmonary = hu["heart_blood"]
        self.add(_Blob(_tube([(trunk[0], trunk[1] + 10.0, zc_h + 0.2 * hz_h), (trunk[0], trunk[1], z_pa)], 13.0), [(0.0, pulmonary, 0.0, 0.0)]))
        for side in (1, -1):
            self.add(_Bar((trunk[0], trunk[1], z_pa), (t4.x + side * 45.0, t4.y + t4.d + 22.0, z_pa - 6.0), 9.0, 7.0, 8.0, [(0.0, pulmonary, 0.0)]))
        # SVC and IVC
        t2 = self.vert("T2")
        self.add(_Blob(_tube([(t2.x + 30.0, asc[1] + 5.0, t2.z_bot), (t2.x + 28.0, asc[1], zc_h + 0.3 * hz_h)], 9.0), [(0.0, vein, 0.0, 0.0)]))
        last_l = self.lumbar[-1]
        pts = [(v.x + 24.0, v.y + v.d + 12.0, v.z_mid) for v in self.verts if last_l.z_mid <= v.z_mid <= self.dome.z_right - 20]
        if pts:
            pts.append((pts[-1][0], pts[-1][1] + 10.0, self.dome.z_right - 10.0))
            self.add(_Blob(_tube(pts, 12.0, 9.0), [(0.0, vein if self.params["contrast"] != "arterial" else hu["vein"] - 30.0, 0.0, 0.0)]))
        # iliac arteries and veins: diverge below the bifurcation toward the hips
        x_fh = self.x_fh
        for side in (1, -1):
            mid_z = self.z_s1 - 20.0
            a_mid = float(b.get("a", mid_z))
            self.add(_Blob(_tube([(side * 0.55 * a_mid - 20.0 * side, self.y_fh + 15.0, mid_z), (side * 0.3 * (x_fh + 10.0), pts[-1][1] if pts else 0.0, z_bif),
                                  (side * (x_fh - 5.0), self.y_fh + 38.0, self.z_fh - 10.0)], 6.0), [(0.0, art, 0.0, 0.0)]))
            self.add(_Blob(_tube([(side * (x_fh - 15.0), self.y_fh + 30.0, self.z_fh - 10.0), (side * 0.5 * a_mid - 30.0 * side, self.y_fh + 5.0, mid_z),
                                  (side * 20.0, float(b.spine_y(last_l.z_mid)) + last_l.d + 10.0, last_l.z_mid)], 8.0), [(0.0, vein, 0.0, 0.0)]))

    @property
    def x_fh(self) -> float:
        return 88.0 * self.params["scale_x"] ** 0.5

    # --- retroperitoneum and muscles -----------------------------------------------------------
    def _retroperitoneum(self) -> None:
        rng, hu, b = self.rng, self.hu, self.body
        last_t = self.thoracic[-1]
        lum = self.lumbar
        l1 = lum[0]
        # kidneys: left higher; upper poles medial and posterior
        zc_left = lum[1].z_top - _u(rng, -5.0, 15.0)
        zc_right = zc_left - _u(rng, 5.0, 20.0)
        self.params["kidney_centres_mm"] = [round(zc_right, 1), round(zc_left, 1)]
        for side, zc in ((1, zc_right), (-1, zc_left)):
            v = l1
            hz = _u(rng, 50.0, 60.0)
            x = v.x + side * (v.w + _u(rng, 40.0, 50.0))
            y = v.y - 4.0
            ang = side * _u(rng, 0.4, 0.7)
            keys = _ellipsoid(zc, hz, x + side * 8.0, y, _u(rng, 26.0, 32.0), _u(rng, 22.0, 27.0), ang, shift=(-side * 16.0, -6.0))
            self.add(_Blob(keys, [(0.0, hu["kidney_cortex"], 0.0, 0.0), (6.0, hu["kidney_medulla"], 0.0, 5.0)]))
            self.add(_Blob(_ellipsoid(zc, hz * 0.45, x - side * 10.0, y + 6.0, 11.0, 8.0, ang), [(0.0, hu["visceral_fat"] + 20.0, 0.0, 0.0)]))
        # diaphragmatic crura hugging the aorta
        for side in (1, -1):
            v0, v1 = self.thoracic[-2], lum[1]
            pts = [(v.x + side * (v.w * 0.55), v.y + v.d + 6.0, v.z_mid) for v in (v1, l1, last_t, v0)]
            self.add(_Blob([(z, x, y, 5.0, 13.0, side * 0.35) for x, y, z in pts], [(0.0, hu["muscle"], 0.0, 0.0)]))
        # psoas: appears at L1, grows caudally, joins iliacus and runs anterior over the hip
        growth = [0.25, 0.55, 0.78, 0.92, 1.0, 1.0]
        size = _u(rng, 0.8, 1.2)
        x_fh = self.x_fh
        for side in (1, -1):
            keys = [(l1.z_top, l1.x + side * (l1.w + 2.0), l1.y - 2.0, 3.0, 3.0, 0.0)]
            for n, v in enumerate(lum):
                g = growth[min(n, len(growth) - 1)] if n < len(lum) - 1 else 1.0
                a, bb = 22.0 * g * size, 17.0 * g * size
                keys.append((v.z_mid, v.x + side * (v.w + a * 0.6), v.y + 5.0 + 10.0 * n / len(lum), a, bb, side * 0.3))
            keys.append((self.z_s1 - 30.0, side * (0.45 * float(b.get("a", self.z_s1 - 30.0))), self.y_fh - 5.0, 24.0 * size, 20.0 * size, side * 0.2))
            keys.append((self.z_fh, side * (x_fh - 20.0), self.y_fh + 35.0, 20.0, 15.0, 0.0))
            keys.append((self.z_fh - 50.0, side * (x_fh - 10.0), self.y_fh + 35.0, 18.0, 14.0, 0.0))
            self.add(_Blob(keys, [(0.0, hu["muscle"], 0.0, 0.0)]))
            # quadratus lumborum: T12 to the iliac crest, beside the transverse process tips
            keys = [(v.z_mid, v.x + side * (v.w + 48.0), v.y - 20.0, 18.0 * min(1.0, 0.4 + 0.3 * n), 9.0, side * 0.5)
                    for n, v in enumerate([last_t] + lum) if v.z_mid > self.z_crest - 20]
            keys.append((self.z_crest - 20.0, keys[-1][1], keys[-1][2], 8.0, 6.0, side * 0.5))
            self.add(_Blob(keys, [(0.0, hu["muscle"], 0.0, 0.0)]))
            # iliacus in the iliac fossa
            keys = []
            for z in np.linspace(self.z_crest - 8.0, self.z_fh + 15.0, 4):
                a = float(b.get("a", z))
                keys.append((float(z), side * 0.72 * a, self.y_fh - 20.0 + 0.2 * (self.z_crest - z), 16.0, 24.0, -side * 0.5))
            self.add(_Blob(keys, [(0.0, hu["muscle"], 0.0, 0.0)]))
            # erector spinae along the spine
            keys = []
            for v in self.verts:
                z = v.z_mid
                ex, e_off, ea, eb = (float(b.get(n, z)) for n in ("ex", "e_off", "ea", "eb"))
                keys.append((z, v.x + side * ex, v.y - v.d - e_off, ea, eb, 0.0))
            zb = self.z_s1 - 40.0
            keys.append((zb, side * 20.0, self.y_sacrum_front(zb) - 30.0, 14.0, 8.0, 0.0))
            self.add(_Blob(keys, [(0.0, hu["muscle"] + 3.0, 0.0, 0.0)]))

    # --- spine -----------------------------------------------------------------------------------
    def _spine(self) -> None:
        hu = self.hu
        canc = hu["cancellous"]
        verts = self.verts
        for n, v in enumerate(verts):
            g = v.tilt
            self.add(_Blob([(v.z_bot, v.x, v.y, v.w, v.d, 0.0), (v.z_top, v.x, v.y, v.w, v.d, 0.0)],
                           [(0.0, hu["cortex"], 0.0, 0.0), (1.5, canc, 35.0, 1.2)], label=v.label, body=True, tilt=(g, v.y)))
            lower = verts[n + 1] if n + 1 < len(verts) else None
            z_next = lower.z_top if lower is not None else v.z_bot - v.disc
            lx, ly, lw, ld = (lower.x, lower.y, lower.w, lower.d) if lower is not None else (v.x, v.y - 3.0, v.w * 1.05, v.d)
            self.add(_Blob([(z_next, lx, ly, lw + 1.0, ld + 1.0, 0.0), (v.z_bot, v.x, v.y, v.w + 1.0, v.d + 1.0, 0.0)],
                           [(0.0, hu["disc"] + 10.0, 0.0, 0.0), (6.0, hu["disc"] - 10.0, 0.0, 0.0)], tilt=(g, v.y)))
        # spinal canal (CSF) with the cord down to L1
        canal, cord = [], []
        for v in verts:
            rcx, rcy = self._canal(v)
            yc = v.y - v.d - rcy + 1.5
            canal.append((v.z_mid, v.x, yc, rcx, rcy, 0.0))
            if v.region != "L" or v.index == 1:
                cord.append((v.z_mid, v.x, yc, rcx * 0.55, rcy * 0.6, 0.0))
        canal.insert(0, (verts[0].z_top + 20.0,) + canal[0][1:])
        cord.insert(0, (verts[0].z_top + 20.0,) + cord[0][1:])
        canal.append((self.z_s1,) + canal[-1][1:])
        self.add(_Blob(canal, [(0.0, hu["csf"], 0.0, 0.0)], carve=True))
        self.add(_Blob(cord, [(0.0, hu["cord"], 0.0, 0.0)]))
        for n, v in enumerate(verts):
            above = verts[n - 1].disc if n > 0 else 4.0
            self._posterior_elements(v, above)

    @staticmethod
    def _canal(v: _Vertebra) -> tuple[float, float]:
        return {"C": (11.0, 7.0), "T": (8.0, 8.0), "L": (11.5, 8.5)}[v.region]

    def _tp_length(self, v: _Vertebra) -> float:
        if v.region == "L":
            lengths = {1: 13.0, 2: 21.0, 3: 30.0, 4: 24.0, 5: 18.0, 6: 16.0}
            return lengths[v.index] * (1.0 + 0.06 * float(self.rng.standard_normal()))
        if v.region == "T":
            return 21.0 - 6.0 * (v.index - 1) / max(len(self.thoracic) - 1, 1)
        return 8.0

    def _posterior_elements(self, v: _Vertebra, disc_above: float) -> None:
        hu, lab, g = self.hu, v.label, v.tilt
        bone = [(0.0, hu["cortex"], 0.0), (1.5, hu["cancellous"], 30.0)]
        h = v.height
        rcx, rcy = self._canal(v)
        yc = v.y - v.d - rcy + 1.5
        ped_hw, lam_hw = {"C": (3.0, 3.0), "T": (4.0, 4.5), "L": (5.0, 6.0)}[v.region]

        def z_at(z: float, y: float) -> float:
            return z + g * (y - v.y)

        z_ped = v.z_top - 0.32 * h
        apex_y = yc - rcy - lam_hw
        if v.region == "L":
            sp_len, sp_hw, sp_drop, sp_hh = 32.0, 5.0, 2.0, 0.38 * h
            last = v is self.lumbar[-1]
            tp_hw, tp_back, tp_hh = ((7.0, 6.0) if last else (4.0, 2.3)), math.radians(20.0), 0.16 * h
        elif v.region == "T":
            steep = 1.0 - abs(v.index - 7) / 8.0
            sp_len, sp_hw, sp_drop, sp_hh = 36.0, 3.0, 12.0 + 18.0 * steep, 6.0
            tp_hw, tp_back, tp_hh = (5.0, 5.0), math.radians(38.0), 5.0
        else:
            sp_len = 32.0 if v.index == 7 else 20.0
            sp_hw, sp_drop, sp_hh = 3.0, 8.0, 5.0
            tp_hw, tp_back, tp_hh = (3.0, 3.0), math.radians(-20.0), 4.0
        tp_len = self._tp_length(v)
        self.params.setdefault("transverse_process_mm", {})[v.name] = round(tp_len, 1)
        for s in (1, -1):
            xj = v.x + s * (rcx + ped_hw * 0.6)
            # pedicle (upper part of the body)
            self.add(_Bar((xj, v.y - v.d + 3.0, z_at(z_ped, v.y - v.d)), (xj, yc - 1.0, z_at(z_ped, yc)), ped_hw, ped_hw, 0.2 * h, bone, lab))
            # lamina to the midline
            z_lam = v.z_mid - 0.08 * h
            self.add(_Bar((xj, yc - 2.0, z_at(z_lam, yc)), (v.x, apex_y, z_at(z_lam - 0.1 * h, apex_y)), lam_hw, lam_hw, 0.4 * h, bone, lab))
            # transverse process
            x0, y0 = v.x + s * (rcx + ped_hw), yc
            tip = (x0 + s * tp_len * math.cos(tp_back), y0 - tp_len * math.sin(tp_back))
            z_tp = v.z_top - (0.3 if v.region == "L" else 0.4) * h
            self.add(_Bar((x0, y0, z_at(z_tp, y0)), (tip[0], tip[1], z_at(z_tp, tip[1])), tp_hw[0], tp_hw[1], tp_hh, bone, lab))
            # superior (up into the disc above) and inferior (down into the disc below) articular processes
            xs_ = v.x + s * (rcx + ped_hw + 1.0)
            fa = 6.0 if v.region == "L" else 4.5
            self.add(_Blob([(v.z_top - 0.25 * h, xs_, yc - 1.0, fa, fa + 2.0, 0.0), (v.z_top + 0.7 * disc_above, xs_, yc - 2.0, fa - 0.5, fa + 1.0, 0.0)],
                           [(0.0, hu["cortex"], 0.0, 0.0), (1.5, hu["cancellous"], 30.0, 1.0)], label=lab, tilt=(g, v.y)))
            xi = v.x + s * (rcx + 0.5)
            self.add(_Blob([(v.z_bot - 0.8 * v.disc, xi, yc - rcy - 1.0, fa - 0.5, fa + 1.0, 0.0), (v.z_bot + 0.3 * h, xi, yc - rcy, fa - 0.5, fa + 1.5, 0.0)],
                           [(0.0, hu["cortex"], 0.0, 0.0), (1.5, hu["cancellous"], 30.0, 1.0)], label=lab, tilt=(g, v.y)))
        # spinous process
        z_sp = v.z_mid - (0.2 if v.region == "L" else 0.25) * h
        tip_y = apex_y - sp_len
        self.add(_Bar((v.x, apex_y, z_at(z_sp, apex_y)), (v.x, tip_y, z_at(z_sp - sp_drop, tip_y)), sp_hw, sp_hw * 0.8, sp_hh, bone, lab))

    # --- ribs, sternum, clavicles, scapulae ----------------------------------------------------
    def _ribs(self) -> None:
        rng, hu, b = self.rng, self.hu, self.body
        n_t = len(self.thoracic)
        ends = [150, 160, 162, 162, 160, 158, 155, 140, 130, 120, 100, 70]
        drops = [30, 50, 65, 80, 95, 105, 110, 110, 105, 100, 90, 80]
        if n_t == 11:
            ends, drops = ends[:10] + [70], drops[:11]
        elif n_t == 13:
            ends, drops = ends[:11] + [85, 55], drops + [75]
        self.params["rib_bearing"] = [v.name for v in self.thoracic]
        rib_layers = [(0.0, hu["cortex"] * 0.95, 0.0), (1.6, hu["cancellous"] + 40.0, 20.0)]
        cart = [(0.0, hu["cartilage"], 15.0)]
        for n, v in enumerate(self.thoracic):
            phi_end = math.radians(ends[n] + _u(rng, -5.0, 5.0))
            drop = drops[n] * self.params["scale_z"]
            rcx, rcy = self._canal(v)
            yc = v.y - v.d - rcy + 1.5
            hh = 8.0 if n == 0 else 6.5
            z0 = v.z_top - 0.15 * v.height
            for s in (1, -1):
                pts = [(v.x + s * v.w * 0.8, v.y - v.d * 0.5, z0)]
                tp = self._tp_length(v)
                pts.append((v.x + s * (rcx + 3.5 + tp * 0.8), yc - tp * 0.6, z0 - 2.0))
                phi_s = math.radians(32.0)
                steps = max(2, int((phi_end - phi_s) / math.radians(14.0)) + 1)
                for phi in np.linspace(phi_s, phi_end, steps):
                    frac = (phi - phi_s) / (math.pi - phi_s)
                    z = z0 - 3.0 - drop * frac ** 1.15
                    pts.append(self._cage_point(s, float(phi), z, 4.0))
                self.add(_Chain([_Bar(p0, p1, 4.0 if p0[1] < v.y else 3.2, 4.0 if p1[1] < v.y else 3.2, hh, rib_layers)
                                 for p0, p1 in zip(pts[:-1], pts[1:])]))
                # costal cartilage to the sternum (true ribs) or the costal margin (false ribs)
                end = pts[-1]
                if n < 7:
                    zc = end[2] + 4.0
                    target = (s * 12.0, float(b.get("ba", zc)) + 6.0, zc)
                elif n < 10 and n < n_t - 2:
                    zc = end[2] + 18.0
                    target = self._cage_point(s, math.radians(ends[n] + 25.0), zc, 2.0)
                else:
                    continue
                self.add(_Bar(end, target, 3.5, 3.5, 6.0, cart))

    def _cage_point(self, side: int, phi: float, z: float, outward: float) -> tuple[float, float, float]:
        """Point on the cavity wall at angle ``phi`` from the posterior midline, ``outward`` mm outside it."""
        b = self.body
        a, ba, bp, na, np_ = (float(b.get(n, z)) for n in ("a", "ba", "bp", "na", "np"))
        sx, sy = math.sin(phi), -math.cos(phi)
        bb, nn = (ba, na) if sy > 0 else (bp, np_)
        r = (abs(sx / a) ** nn + abs(sy / bb) ** nn) ** (-1.0 / nn) + outward
        return side * r * sx, r * sy, z

    def _chest_bones(self) -> None:
        hu, b = self.hu, self.body
        t = self.by_name
        bone = self.bone()
        # sternum: manubrium, body, xiphoid
        keys = []
        for name, frac, a, bb in (("T2", 0.0, 24.0, 8.0), ("T4", 0.5, 17.0, 7.0), ("T7", 0.5, 15.0, 6.5), ("T9", 0.5, 12.0, 6.0)):
            v = t[name]
            z = v.z_bot + frac * v.height
            keys.append((z, 0.0, float(b.get("ba", z)) + 7.0, a, bb, 0.0))
        z_x = t["T10"].z_mid
        keys.append((z_x, 0.0, float(b.get("ba", z_x)) + 6.0, 6.0, 3.5, 0.0))
        self.add(_Blob(keys, [(0.0, hu["cortex"] * 0.8, 0.0, 0.0), (1.6, hu["cancellous"], 30.0, 1.0)]))
        # clavicles
        t1 = t["T1"]
        z_sc = t1.z_bot
        for s in (1, -1):
            a_s = float(b.outline(t1.z_mid)[0])
            self.add(_Bar((s * 18.0, float(b.get("ba", z_sc)) + 14.0, z_sc), (s * (a_s - 25.0), t1.y + 5.0, t1.z_top + 12.0), 7.0, 6.0, 7.0, bone))
        # scapulae behind the ribs
        for s in (1, -1):
            keys = []
            for name, med, lat, hw in (("T2", 30.0, 95.0, 9.0), ("T4", 30.0, 80.0, 3.5), ("T6", 33.0, 68.0, 3.0), ("T8", 38.0, 48.0, 3.0)):
                v = t[name]
                pts = [self._cage_point(s, math.radians(phi), v.z_mid, 13.0)[:2] for phi in (med, (med + lat) / 2, lat)]
                keys.append((v.z_mid, pts, hw))
            z_top = t["T2"].z_top + 10.0
            keys.append((z_top, keys[0][1], 5.0))
            self.add(_Polyline(keys, bone))
            if self.arms_down:
                a_s = float(b.outline(t["T2"].z_mid)[0])
                self.add(_Blob(_ellipsoid(t["T2"].z_mid, 24.0, s * (a_s - 22.0), -0.1 * float(b.get("bp", t["T2"].z_mid)), 23.0, 23.0),
                               [(0.0, hu["cortex"] * 0.8, 0.0, 0.0), (2.0, hu["cancellous"], 30.0, 1.5)]))

    # --- sacrum and pelvis -----------------------------------------------------------------------
    def _sacrum(self) -> None:
        rng, hu = self.rng, self.hu
        last = self.lumbar[-1]
        beta0, beta1 = math.radians(_u(rng, 35.0, 50.0)), math.radians(_u(rng, -10.0, 10.0))
        self.params["sacral_slope_deg"] = round(math.degrees(beta0), 1)
        total = sum(self.sacral_segments)
        x, y, z, s = last.x, last.y - 3.0, self.z_s1, 0.0
        lab = VERSE_IDS["sacrum"]
        w0, d0 = last.w * 1.0, last.d * 1.0
        for n, length in enumerate(self.sacral_segments):
            beta = beta0 + (beta1 - beta0) * (s + length / 2) / total
            dy, dz = -math.sin(beta) * length, -math.cos(beta) * length
            cy, cz = y + dy / 2, z + dz / 2
            shrink = 1.0 - 0.75 * (s + length / 2) / total
            w, d = w0 * shrink + 4.0, d0 * shrink + 2.0
            hz = (length / 2) / max(math.cos(beta), 0.5)
            g = -math.tan(beta)
            self.add(_Blob([(cz - hz, x, cy, w, d, 0.0), (cz + hz, x, cy, w, d, 0.0)], [(0.0, hu["cortex"] * 0.9, 0.0, 0.0), (1.5, hu["cancellous"], 35.0, 0.0)],
                           label=lab, body=True, tilt=(g, cy)))
            if n < 3:
                ala = (34.0, 26.0, 14.0)[n] * (1.0 if len(self.sacral_segments) >= 5 else 0.9)
                for side in (1, -1):
                    self.add(_Blob([(cz - hz, x + side * (w + ala / 2 - 6.0), cy - 4.0, ala / 2 + 6.0, d * 0.8, 0.0),
                                    (cz + hz, x + side * (w + ala / 2 - 6.0), cy - 4.0, ala / 2 + 6.0, d * 0.8, 0.0)],
                                   [(0.0, hu["cortex"] * 0.9, 0.0, 0.0), (1.5, hu["cancellous"], 35.0, 0.0)], label=lab, tilt=(g, cy)))
            # sacral canal and dorsal plate
            self.add(_Blob([(cz - hz, x, cy - d - 5.0, max(11.0 * shrink, 3.0), max(5.0 * shrink, 2.0), 0.0),
                            (cz + hz, x, cy - d - 5.0, max(11.0 * shrink, 3.0), max(5.0 * shrink, 2.0), 0.0)], [(0.0, hu["visceral_fat"] + 60.0, 0.0, 0.0)], tilt=(g, cy)))
            self.add(_Blob([(cz - hz, x, cy - d - 13.0, w * 0.75, 4.0, 0.0), (cz + hz, x, cy - d - 13.0, w * 0.75, 4.0, 0.0)],
                           [(0.0, hu["cortex"] * 0.8, 0.0, 0.0)], label=lab, tilt=(g, cy)))
            y, z, s = y + dy, z + dz, s + length
        self.x_si = last.x + w0 + 4.0 + 34.0 - 2.0

    def _pelvis(self) -> None:
        rng, hu, b = self.rng, self.hu, self.body
        bone = self.bone()
        last = self.lumbar[-1]
        ysr = last.y
        zc, zs1, zfh = self.z_crest, self.z_s1, self.z_fh
        x_fh, y_fh = self.x_fh, self.y_fh
        r_fh = _u(rng, 21.0, 25.0) * self.params["scale_z"]
        self.params["pelvis_mm"] = {"iliac_crest": round(zc, 1), "sacrum_top": round(zs1, 1), "femoral_heads": round(zfh, 1)}
        for s in (1, -1):
            def arc(z: float, xc: float, yc: float, rx: float, ry: float, phi0: float, phi1: float, hw: float) -> tuple[float, list, float]:
                """Iliac wing as an arc convex laterally (centre and x-radius in units of the cavity half-width)."""
                a = float(b.get("a", z))
                return (z, [(s * (xc + rx * math.cos(f)) * a, yc + ry * math.sin(f)) for f in np.radians(np.linspace(phi0, phi1, 6))], hw)

            def line(z: float, p0: tuple[float, float], p1: tuple[float, float], hw: float) -> tuple[float, list, float]:
                return (z, [(s * (p0[0] + (p1[0] - p0[0]) * t), p0[1] + (p1[1] - p0[1]) * t) for t in np.linspace(0.0, 1.0, 6)], hw)

            keys = [
                arc(zc, 0.35, ysr + 50.0, 0.55, 65.0, -45.0, -15.0, 3.5),
                arc(zc - 15.0, 0.35, ysr + 50.0, 0.55, 65.0, -80.0, 5.0, 5.0),
                arc(zs1 - 5.0, 0.33, ysr + 50.0, 0.57, 65.0, -82.0, 12.0, 5.0),
                arc(zs1 - 45.0, 0.33, ysr + 55.0, 0.6, 65.0, -75.0, 10.0, 7.0),
                line(zfh + 28.0, (x_fh - 28.0, y_fh - 40.0), (x_fh - 5.0, y_fh + 35.0), 11.0),
                line(zfh + 12.0, (x_fh - 26.0, y_fh - 30.0), (x_fh - 10.0, y_fh + 28.0), 9.0),
            ]
            self.add(_Polyline(keys, bone))
            # acetabulum (opens laterally), joint space, femoral head, neck, trochanter, shaft
            self.add(_Blob(_ellipsoid(zfh + 4.0, r_fh + 8.0, s * (x_fh - 6.0), y_fh, r_fh + 9.0, r_fh + 9.0), _bone_layers(hu)))
            self.add(_Blob(_ellipsoid(zfh, r_fh + 2.5, s * x_fh, y_fh, r_fh + 2.5, r_fh + 2.5), [(0.0, hu["muscle"] + 15.0, 0.0, 0.0)]))
            self.add(_Blob(_ellipsoid(zfh, r_fh, s * x_fh, y_fh, r_fh, r_fh), _bone_layers(hu)))
            troch = (s * (x_fh + 42.0), y_fh - 12.0)
            self.add(_Bar((s * x_fh, y_fh, zfh), (troch[0], troch[1], zfh - 28.0), 13.0, 14.0, 13.0, bone))
            self.add(_Blob(_ellipsoid(zfh - 20.0, 28.0, troch[0], troch[1], 17.0, 21.0), _bone_layers(hu)))
            self.add(_Blob(_tube([(troch[0] - s * 5.0, troch[1] + 4.0, zfh - 40.0), (troch[0] - s * 12.0, troch[1] + 8.0, zfh - 120.0)], 14.0),
                           [(0.0, hu["cortex"], 0.0, 0.0), (5.0, hu["marrow_fat"], 10.0, 0.0)]))
            # pubic and ischial rami
            self.add(_Bar((s * (x_fh - 18.0), y_fh + 22.0, zfh - 4.0), (s * 6.0, y_fh + 48.0, zfh - 30.0), 7.0, 8.0, 9.0, bone))
            self.add(_Bar((s * (x_fh - 12.0), y_fh - 24.0, zfh - 6.0), (s * (x_fh - 28.0), y_fh - 36.0, zfh - 60.0), 9.0, 11.0, 12.0, bone))


def _bone_layers(hu: dict[str, float]) -> list[tuple[float, float, float, float]]:
    """Cortex + cancellous layers for a :class:`_Blob` bone."""
    return [(0.0, hu["cortex"] * 0.85, 0.0, 0.0), (2.0, hu["cancellous"], 35.0, 1.5)]


# ================================================================================================
# Scan set-up and public API
# ================================================================================================

_EXTENT_WEIGHTS = {"abdomen": 0.5, "chest": 0.15, "whole_body": 0.15, "l3_edge": 0.2}
_ARMS_DOWN = {"abdomen": 0.15, "chest": 0.1, "whole_body": 0.6, "l3_edge": 0.15}
_THICKNESS_WEIGHTS = (0.1, 0.15, 0.15, 0.1, 0.1, 0.1, 0.1, 0.2)
_NAMES = {label: name for name, label in VERSE_IDS.items()}


def _draw_variant(rng: np.random.Generator) -> str:
    """A variant at realistic rates: 2.5% each for 11/13 rib pairs, 4% each for lumbarisation/sacralisation."""
    u = rng.random()
    for name, cumulative in (("11_ribs", 0.025), ("13_ribs", 0.05), ("lumbarised", 0.09), ("sacralised", 0.13)):
        if u < cumulative:
            return name
    return "normal"


def _scan_range(an: _Anatomy, extent: str, u: np.ndarray, thickness: float) -> tuple[float, int, str | None]:
    """Centre z (mm) of the lowest slice, number of slices, and which scan edge cuts L3 (``l3_edge`` only)."""
    v, thoracic, lumbar = an.by_name, an.thoracic, an.lumbar

    def mix(lo: float, hi: float, t: float) -> float:
        return lo + (hi - lo) * float(t)

    edge = None
    t10 = thoracic[-3]
    if extent == "abdomen":
        top = mix(t10.z_mid - 0.6 * t10.height, t10.z_mid + 0.5 * t10.height, u[0])
        bottom = an.z_s1 - mix(15.0, 100.0, u[1])
    elif extent == "chest":
        top = mix(v["C6"].z_mid, v["T1"].z_top + 10.0, u[0])
        bottom = mix(thoracic[-1].z_mid, lumbar[0].z_mid, u[1])
    elif extent == "whole_body":
        top = mix(v["C2"].z_mid, v["C5"].z_mid, u[0])
        bottom = an.z_fh - mix(10.0, 60.0, u[1])
    else:
        l3 = v["L3"]
        cut = mix(l3.z_bot, l3.z_top, mix(0.2, 0.8, u[2]))
        if u[3] < 0.5:
            edge, top, bottom = "lower", mix(thoracic[-6].z_mid, thoracic[-2].z_mid, u[0]), cut
        else:
            edge, top, bottom = "upper", cut, an.z_s1 - mix(15.0, 100.0, u[1])
    n = int(math.floor((top - bottom) / thickness + 1e-9)) + 1
    z_lo = top - (n - 1) * thickness if edge == "upper" else bottom
    return z_lo, n, edge


def _texture(rng: np.random.Generator, nj: int, ni: int, px: float) -> np.ndarray:
    """Smooth unit-variance noise (twice the slice size) shared by textured tissues."""
    white = rng.standard_normal((2 * nj + 8, 2 * ni + 8)).astype(np.float32)
    tex = ndimage.gaussian_filter(white, max(_TEX_SIGMA_MM / px, 0.7))
    return tex / max(float(tex.std()), 1e-6)


def _kernel_energy(sigma: float, truncate: float = 3.0) -> float:
    """Sum of squared weights of scipy's 1-D Gaussian kernel (noise variance kept by the blur)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    return float(np.sum(w * w))


def _slice_ranges(present: np.ndarray, flip: bool) -> dict[str, tuple[int, int]]:
    """``{name: (first, last)}`` stored slice ranges from a ``[slice, label]`` presence table."""
    n = present.shape[0]
    out: dict[str, tuple[int, int]] = {}
    for label in range(1, present.shape[1]):
        ks = np.flatnonzero(present[:, label])
        if ks.size and label in _NAMES:
            k0, k1 = int(ks[0]), int(ks[-1])
            out[_NAMES[label]] = (n - 1 - k1, n - 1 - k0) if flip else (k0, k1)
    return out


def _jsonable(value: Any) -> Any:
    """Plain Python (JSON-serialisable) copy of ``value`` (numpy scalars, tuples)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def generate_phantom(seed: int, *, shape_ij: tuple[int, int] = (128, 128), slice_thickness_mm: float | None = None,
                     pixel_spacing_mm: float | None = None, extent: str = "abdomen", noise_hu: float | None = None,
                     variant: str | None = None, superior_first: bool = False) -> Phantom:
    """Draw a synthetic CT scan and its vertebra labels from ``seed`` (same seed, same voxels).

    Args:
        seed: random seed; the anatomy depends on it alone (not on the acquisition arguments).
        shape_ij: in-plane size ``(n_i, n_j)``: columns (patient right to left), rows (anterior to posterior).
        slice_thickness_mm: slice thickness = spacing (mm); drawn from :data:`THICKNESSES_MM` when None.
        pixel_spacing_mm: in-plane pixel size (mm); when None the field of view (330-450 mm, widened
            to hold the body) is spread over the larger of the two in-plane sizes.
        extent: ``"abdomen"`` (about T10 to the sacrum or hips, L3 always whole), ``"chest"`` (C6-T1 to
            T12-L1, no L3), ``"whole_body"`` (neck to hips), ``"l3_edge"`` (L3 cut by the lower or
            upper scan edge: label 22 touches the first or last slice) or ``"random"`` (drawn).
        noise_hu: standard deviation of the image noise (HU); drawn in 10-30 when None.
        variant: one of :data:`VARIANTS` to force it; None draws ``"normal"`` 87% of the time
            (see the module docstring for how L3 is defined in each variant).
        superior_first: store slices head-first (``k`` toward inferior); ranges then count stored slices.

    Returns:
        A :class:`Phantom` with int16 HU voxels ``[k, j, i]`` and its uint8 VerSe label map.
    """
    if extent not in EXTENTS:
        raise ValueError(f"extent must be one of {EXTENTS}, got {extent!r}")
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS} or None, got {variant!r}")
    ni, nj = (int(s) for s in shape_ij)
    if ni < 16 or nj < 16:
        raise ValueError(f"shape_ij must be at least 16 x 16, got {shape_ij}")
    if slice_thickness_mm is not None and not slice_thickness_mm > 0:
        raise ValueError(f"slice_thickness_mm must be positive, got {slice_thickness_mm}")
    if pixel_spacing_mm is not None and not pixel_spacing_mm > 0:
        raise ValueError(f"pixel_spacing_mm must be positive, got {pixel_spacing_mm}")

    anat_rng, acq_rng, noise_rng, pose_rng = np.random.default_rng(seed).spawn(4)
    drawn_variant = _draw_variant(anat_rng)
    an = _Anatomy(anat_rng, variant or drawn_variant)

    # Acquisition: every value is drawn whatever the arguments, so an argument changes only itself.
    drawn_extent = str(acq_rng.choice(list(_EXTENT_WEIGHTS), p=list(_EXTENT_WEIGHTS.values())))
    drawn_thickness = float(acq_rng.choice(THICKNESSES_MM, p=_THICKNESS_WEIGHTS))
    u = acq_rng.random(4)
    drawn_fov = _u(acq_rng, 330.0, 450.0)
    offset = (_u(acq_rng, -15.0, 15.0), _u(acq_rng, -10.0, 25.0))
    origin_shift = acq_rng.uniform(-250.0, 250.0, 3)
    drawn_noise = _u(acq_rng, 10.0, 30.0)
    has_table, table_gap, table_hu, arms_u = bool(acq_rng.random() < 0.85), _u(acq_rng, 0.0, 12.0), _u(acq_rng, 150.0, 400.0), float(acq_rng.random())

    extent = drawn_extent if extent == "random" else extent
    thickness = float(slice_thickness_mm) if slice_thickness_mm is not None else drawn_thickness
    noise = float(noise_hu) if noise_hu is not None else drawn_noise
    z_lo, n, edge = _scan_range(an, extent, u, thickness)
    z_hi = z_lo + (n - 1) * thickness
    a_out, _, bp_out = an.body.outline(np.linspace(z_lo, z_hi, 64))
    if pixel_spacing_mm is None:
        fov = min(max(drawn_fov, 2.0 * (float(np.max(a_out)) + abs(offset[0])) * 1.04), 500.0)
        px = fov / max(ni, nj)
    else:
        px = float(pixel_spacing_mm)
    arms_down = arms_u < _ARMS_DOWN[extent]
    table = (offset[1] - float(np.max(bp_out)) - table_gap, table_hu) if has_table else None
    items = an.build(z_lo - thickness, z_hi + thickness, pose_rng, arms_down, table)

    # Paint every slice.
    canvas = _Canvas(ni, nj, px, math.radians(an.params["roll_deg"]), offset, thickness, _texture(noise_rng, nj, ni, px))
    canvas.dome = an.dome
    buckets: list[list[_Item]] = [[] for _ in range(n)]
    for item in items:
        k0 = max(0, math.floor(max((item.zmin - z_lo) / thickness, -1.0) - 0.5))
        k1 = min(n - 1, math.ceil(min((item.zmax - z_lo) / thickness, n + 1.0) + 0.5))
        for k in range(k0, k1 + 1):
            buckets[k].append(item)
    # Scanner: noise, then the reconstruction blur (in-plane PSF, then slice profile along z), int16 HU.
    sig_xy, sig_z = float(np.clip(0.7 / px, 0.4, 1.0)), 0.35
    noise_scale = np.float32(noise / math.sqrt(_kernel_energy(sig_z) * _kernel_energy(sig_xy) ** 2))
    vol = np.empty((n, nj, ni), np.float32)
    labels = np.empty((n, nj, ni), np.uint8)
    body_present = np.zeros((n, 256), bool)
    for k in range(n):
        canvas.start(z_lo + k * thickness)
        for item in buckets[k]:
            item.paint(canvas)
        canvas.img += noise_rng.standard_normal((nj, ni), dtype=np.float32) * noise_scale
        ndimage.gaussian_filter(canvas.img, sig_xy, output=vol[k], truncate=3.0)
        labels[k] = canvas.lab
        body_present[k, list(canvas.body_labels)] = True
    ndimage.gaussian_filter1d(vol, sig_z, axis=0, output=vol, truncate=3.0)
    np.clip(vol, -1024.0, 3071.0, out=vol)
    voxels = np.rint(vol, out=vol).astype(np.int16)
    del vol

    present = np.stack([np.bincount(labels[k].ravel(), minlength=256) > 0 for k in range(n)])
    ijk_to_ras = np.diag([-px, -px, thickness, 1.0])
    ijk_to_ras[:3, 3] = (canvas.x0 + origin_shift[0], canvas.y0 + origin_shift[1], z_lo + origin_shift[2])
    if superior_first:
        voxels, labels = voxels[::-1].copy(), labels[::-1].copy()
        ijk_to_ras[2, 2] = -thickness
        ijk_to_ras[2, 3] = z_hi + origin_shift[2]
    level_ranges = _slice_ranges(present, superior_first)
    body_ranges = _slice_ranges(body_present, superior_first)

    params = {
        "seed": seed, "extent": extent, "l3_cut_by": edge, "variant": an.variant, "shape_ij": [ni, nj], "slice_thickness_mm": thickness,
        "pixel_spacing_mm": px, "num_slices": n, "noise_hu": noise, "table": has_table, "arms_down": arms_down, "superior_first": superior_first,
        "torso_offset_mm": list(offset), "hu": an.hu, **{k: v for k, v in an.params.items() if k != "variant"},
        "vertebral_bodies_ras_z_mm": {v.name: [v.z_bot + origin_shift[2], v.z_top + origin_shift[2]] for v in an.verts},
        "ras_z_shift_mm": origin_shift[2],
    }
    volume = CTVolume(voxels, ijk_to_ras, source=f"phantom:{seed}", metadata={"modality": "CT", "phantom": True})
    return Phantom(volume=volume, vertebra_labels=labels, level_ranges=level_ranges, l3_range=l3_range_from_vertebra_map(labels),
                   params=_jsonable(params), body_ranges=body_ranges)


def write_phantom_case(phantom: Phantom, folder: str | os.PathLike, name: str, *, fmt: str = "nifti", overwrite: bool = False) -> dict[str, Path]:
    """Write ``<name>.nii.gz`` (CT, HU) and ``<name>_vertebrae.nii.gz`` (VerSe ids) into ``folder``.

    ``fmt="nrrd"`` writes ``.nrrd`` files instead (LPS, as 3D Slicer). Both files share the CT's
    geometry; each is written to a temporary file and moved into place. Returns
    ``{"ct": path, "vertebrae": path}``; raises :class:`FileExistsError` unless ``overwrite``.
    """
    from .writing import write_nifti, write_nrrd  # imported here: writing pulls in pydicom

    writers = {"nifti": (write_nifti, ".nii.gz"), "nrrd": (write_nrrd, ".nrrd")}
    if fmt not in writers:
        raise ValueError(f"fmt must be one of {sorted(writers)}, got {fmt!r}")
    write, suffix = writers[fmt]
    folder = Path(folder)
    label_volume = CTVolume(phantom.vertebra_labels, phantom.volume.ijk_to_ras, source=f"{phantom.volume.source} vertebrae")
    return {
        "ct": write(phantom.volume, folder / f"{name}{suffix}", overwrite=overwrite),
        "vertebrae": write(label_volume, folder / f"{name}_vertebrae{suffix}", overwrite=overwrite),
    }
