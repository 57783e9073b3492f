"""One axial slice being painted: its pixel grid in torso millimetres, partial volume and compositing.

Two frames meet here. *Scanner* millimetres: x toward the patient's right for column 0, y toward
anterior, the field of view centred on 0. *Torso* millimetres: the same axes rolled by the
patient's in-plane roll about the torso centre (``offset`` in scanner mm); anatomy is laid out in
torso mm (+x patient right, +y anterior, +z superior).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from ..body_composition.tissues import TISSUES

if TYPE_CHECKING:
    from .torso import Diaphragm

#: HU of air (outside the body, gas in bowel and airways).
AIR_HU = -1000.0
#: Angle bins of the per-pixel polar lookup used for the body outline.
_ANGLE_BINS = 1024

Window = tuple[slice, slice]
"""A rectangular pixel window ``(rows, columns)`` of the slice."""


class Canvas:
    """One axial slice being painted, with the pixel grid expressed in torso millimetres.

    Painting is alpha compositing: ``hu += alpha * (value - hu)``, where ``alpha`` combines an
    anti-aliased in-plane edge (partial volume across pixels) and the fraction of the slab
    ``[z - T/2, z + T/2]`` that the structure fills (partial volume across the slice thickness).
    Labels are painted where the pixel centre is inside the shape and the slice centre is inside
    the structure's z-range.

    Attributes:
        hu: the slice being painted (float32 HU, ``[row j, column i]``).
        labels: uint8 VerSe ids painted on this slice.
        cavity: weight (0-1) of the body cavity per pixel, set by the body wall.
        torso_x, torso_y: torso mm of every pixel centre; ``torso_radius`` their distance from the centre.
        scan_x, scan_y: scanner mm of the column / row centres (a row and a column vector).
        z: centre of the current slice (torso mm); ``slab_bottom``/``slab_top`` its slab.
        texture: smooth unit-variance noise for this slice (shared by textured tissues).
        diaphragm: the patient's diaphragm (organs below it, lungs above), set before painting.
        body_labels: vertebral-body labels painted on this slice.
        tissue_fractions: None unless :meth:`track_tissues` was called; then float32
            ``[tissue, row j, column i]``, the fraction of each pixel painted with each body-composition
            tissue (:data:`~l3locator.body_composition.TISSUES` order), the rest being other tissue or air.
    """

    def __init__(self, ni: int, nj: int, pixel_mm: float, roll_rad: float, offset_mm: tuple[float, float], thickness_mm: float,
                 texture_field: np.ndarray):
        self.ni, self.nj, self.pixel_mm, self.thickness = ni, nj, pixel_mm, thickness_mm
        self.roll_cos, self.roll_sin = math.cos(roll_rad), math.sin(roll_rad)
        self.offset_x, self.offset_y = offset_mm
        # Scanner coordinates of pixel centres (mm): x of column i, y of row j (FOV centred on 0).
        self.x_first_column = (ni - 1) / 2.0 * pixel_mm
        self.y_first_row = (nj - 1) / 2.0 * pixel_mm
        xs = (self.x_first_column - np.arange(ni) * pixel_mm).astype(np.float32)
        ys = (self.y_first_row - np.arange(nj) * pixel_mm).astype(np.float32)
        self.scan_y = ys[:, None]
        self.scan_x = xs[None, :]
        dx, dy = self.scan_x - self.offset_x, self.scan_y - self.offset_y
        self.torso_x = (self.roll_cos * dx + self.roll_sin * dy).astype(np.float32)
        self.torso_y = (-self.roll_sin * dx + self.roll_cos * dy).astype(np.float32)
        self.torso_radius = np.hypot(self.torso_x, self.torso_y)
        nb = _ANGLE_BINS
        self.angle_bin = ((np.arctan2(self.torso_y, self.torso_x) + math.pi) / (2 * math.pi) * nb).astype(np.int32) % nb
        theta = (np.arange(nb) + 0.5) / nb * 2 * math.pi - math.pi
        self.bin_cos, self.bin_sin = np.cos(theta), np.sin(theta)
        self.texture_field = texture_field
        self.hu = np.empty((nj, ni), np.float32)
        self.labels = np.zeros((nj, ni), np.uint8)
        self.cavity = np.zeros((nj, ni), np.float32)
        self.z = self.slab_bottom = self.slab_top = 0.0
        self.texture = texture_field[:nj, :ni]
        self.diaphragm: Diaphragm | None = None
        self.body_labels: set[int] = set()
        self.tissue_fractions: np.ndarray | None = None

    def track_tissues(self) -> None:
        """Also record which tissue every composite paints (:attr:`tissue_fractions`), from the next
        :meth:`start` on. Painting (the HU) is unchanged; only the phantoms' ground truth asks for it."""
        self.tissue_fractions = np.zeros((len(TISSUES), self.nj, self.ni), np.float32)

    def start(self, z: float) -> None:
        """Reset for the slice centred at height ``z`` (mm, torso frame)."""
        self.z = z
        self.slab_bottom, self.slab_top = z - self.thickness / 2, z + self.thickness / 2
        self.hu.fill(AIR_HU)
        self.labels.fill(0)
        self.cavity.fill(0.0)
        th, tw = self.texture_field.shape
        oy = int(round(z * 0.37)) % (th - self.nj)
        ox = int(round(z * 0.23 + 17 * math.sin(z * 0.013))) % (tw - self.ni)
        self.texture = self.texture_field[oy : oy + self.nj, ox : ox + self.ni]
        self.body_labels = set()
        if self.tissue_fractions is not None:
            self.tissue_fractions.fill(0.0)

    def slab_fraction(self, lo: Any, hi: Any) -> Any:
        """Fraction of the current slab inside ``[lo, hi]`` (mm; scalars or arrays)."""
        return np.clip((np.minimum(hi, self.slab_top) - np.maximum(lo, self.slab_bottom)) / self.thickness, 0.0, 1.0)

    def window(self, x: float, y: float, radius: float) -> Window | None:
        """Pixel window covering a disc of ``radius`` mm around torso point ``(x, y)``, or None if off-image."""
        sx = self.roll_cos * x - self.roll_sin * y + self.offset_x
        sy = self.roll_sin * x + self.roll_cos * y + self.offset_y
        col, row, rp = (self.x_first_column - sx) / self.pixel_mm, (self.y_first_row - sy) / self.pixel_mm, radius / self.pixel_mm + 1.5
        c0, c1 = max(int(col - rp), 0), min(int(col + rp) + 2, self.ni)
        r0, r1 = max(int(row - rp), 0), min(int(row + rp) + 2, self.nj)
        if c0 >= c1 or r0 >= r1:
            return None
        return slice(r0, r1), slice(c0, c1)

    def ellipse_distance(self, win: Window, cx: float, cy: float, semi_x: float, semi_y: float, angle: float) -> np.ndarray:
        """Approximate signed distance (mm, negative inside) to an ellipse (torso mm, radians), on a window."""
        u = self.torso_x[win] - cx
        v = self.torso_y[win] - cy
        if angle:
            ca, sa = math.cos(angle), math.sin(angle)
            u, v = u * ca + v * sa, v * ca - u * sa
        pa, qb = u / semi_x, v / semi_y
        r = np.sqrt(pa * pa + qb * qb)
        grad = np.sqrt((pa / semi_x) ** 2 + (qb / semi_y) ** 2) / np.maximum(r, 1e-3)
        return (r - 1.0) / np.maximum(grad, 1.0 / max(semi_x, semi_y))

    def edge_alpha(self, signed_distance: np.ndarray, inset_mm: float) -> np.ndarray:
        """Anti-aliased coverage (0-1) of the shape shrunk by ``inset_mm``, from a signed distance (mm)."""
        return np.clip(0.5 - (signed_distance + inset_mm) * (1.0 / self.pixel_mm), 0.0, 1.0)

    def composite(self, win: Window, alpha: np.ndarray, value: float, texture_hu: float = 0.0, tissue: str | None = None) -> None:
        """Blend ``value`` (+ ``texture_hu`` x texture) HU into the window with weights ``alpha``;
        ``tissue``: the body-composition tissue painted (None: any other tissue or air)."""
        target = self.hu[win]
        val: Any = value + texture_hu * self.texture[win] if texture_hu else value
        target += alpha * (val - target)
        if self.tissue_fractions is not None:
            self.record_tissue(win, alpha, tissue)

    def record_tissue(self, win: Window | None, alpha: Any, tissue: str | None) -> None:
        """When tracking tissues, note that ``alpha`` (0-1) of each pixel of ``win`` (None: the whole
        slice) now holds ``tissue`` (None: other tissue or air) and the rest what it held before."""
        if self.tissue_fractions is None:
            return
        fractions = self.tissue_fractions if win is None else self.tissue_fractions[(slice(None), *win)]
        fractions *= 1.0 - alpha
        if tissue is not None:
            fractions[TISSUES.index(tissue)] += alpha

    def label(self, win: Window, mask: np.ndarray, label: int, body: bool = False) -> None:
        """Write ``label`` where ``mask``; remember which vertebral bodies this slice holds."""
        if mask.any():
            self.labels[win][mask] = label
            if body:
                self.body_labels.add(label)
