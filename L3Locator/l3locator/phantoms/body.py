"""Whole-slice items: the body wall and cavity, the aerated lungs and the patient table (HU)."""

from __future__ import annotations

import numpy as np

from .canvas import Canvas
from .shapes import Item
from .torso import Diaphragm, TorsoProfile, TorsoSection

_EVERYWHERE = (-1e9, 1e9)  # z-range (mm) of items present on every slice


def _superellipse_radius(c: Canvas, half_width: float, front: float, back: float, front_exponent: float,
                         back_exponent: float) -> np.ndarray:
    """Radius (mm) of an asymmetric superellipse at each of the canvas's angle bins."""
    sn = c.bin_sin
    b = np.where(sn > 0, front, back)
    n = np.where(sn > 0, front_exponent, back_exponent)
    return (np.abs(c.bin_cos / half_width) ** n + np.abs(sn / b) ** n) ** (-1.0 / n)


class BodyWall(Item):
    """Skin, subcutaneous fat, muscle wall and the body cavity (filled with visceral fat); sets the canvas's cavity."""

    def __init__(self, torso: TorsoProfile, hu: dict[str, float]):
        self.torso, self.hu = torso, hu
        self.zmin, self.zmax = _EVERYWHERE

    def paint(self, c: Canvas) -> None:
        z = c.z
        s = TorsoSection(*(float(v) for v in self.torso.section(z)))
        back_wall = s.cavity_back_mm + 10.0
        skin_width, skin_front, skin_back = (float(v) for v in self.torso.outline(z))
        layers = [  # outline, HU, body-composition tissue
            ((skin_width, skin_front, skin_back), self.hu["skin"], None),
            ((skin_width - 2.0, skin_front - 2.0, skin_back - 2.0), self.hu["fat"], "sat"),
            ((s.cavity_half_width_mm + s.side_muscle_mm, s.cavity_front_mm + s.front_muscle_mm, back_wall), self.hu["muscle"], "muscle"),
            ((s.cavity_half_width_mm, s.cavity_front_mm, s.cavity_back_mm), self.hu["visceral_fat"], "vat"),
        ]
        for n, ((half_width, front, back), hu, tissue) in enumerate(layers):
            radius = _superellipse_radius(c, half_width, front, back, s.front_exponent, s.back_exponent)[c.angle_bin]
            alpha = c.edge_alpha(c.torso_radius - radius, 0.0)
            c.hu += alpha * (hu - c.hu)
            c.record_tissue(None, alpha, tissue)
            if n == len(layers) - 1:
                c.cavity[...] = alpha
        # fat texture: faint septa everywhere, small vessels / nodes in the visceral fat
        c.hu += 6.0 * c.texture + c.cavity * np.clip((c.texture - 1.9) * 3.0, 0.0, 1.0) * (self.hu["muscle"] - self.hu["visceral_fat"])
        if c.tissue_fractions is not None:  # the vessels and nodes are not fat
            c.record_tissue(None, c.cavity * np.clip((c.texture - 1.9) * 3.0, 0.0, 1.0), None)


class Lungs(Item):
    """Aerated lung: the cavity above the diaphragm and below the apices (``apex_z_mm``), with vessel markings."""

    def __init__(self, diaphragm: Diaphragm, apex_z_mm: float, hu: float):
        self.diaphragm, self.apex_z_mm, self.hu = diaphragm, apex_z_mm, hu
        self.zmin, self.zmax = diaphragm.recess_z_mm - 5.0, apex_z_mm

    def paint(self, c: Canvas) -> None:
        zf = float(c.slab_fraction(-1e9, self.apex_z_mm))
        if zf <= 0:
            return
        alpha = c.cavity * zf
        if c.z - c.thickness < self.diaphragm.top_mm:
            zd = self.diaphragm.height(c.torso_x, c.torso_y)
            alpha = alpha * np.clip((c.z - zd) / c.thickness + 0.5, 0.0, 1.0)
        tex = c.texture
        value = self.hu + 25.0 * tex + 900.0 * np.clip((tex - 1.8) * 2.0, 0.0, 1.0)
        c.hu += alpha * (value - c.hu)
        c.record_tissue(None, alpha, None)


class Table(Item):
    """Patient table: a curved carbon shell (``hu``) over foam, its top at scanner ``y = top_y_mm`` (posterior)."""

    def __init__(self, top_y_mm: float, hu: float):
        self.top_y_mm, self.hu = top_y_mm, hu
        self.zmin, self.zmax = _EVERYWHERE

    def paint(self, c: Canvas) -> None:
        top = self.top_y_mm + (c.scan_x - c.offset_x) ** 2 / 1800.0  # sides curve up (radius ~900 mm)
        depth = top - c.scan_y  # mm below the table top surface
        inv_px = 1.0 / c.pixel_mm
        shell = np.clip(np.minimum(depth + 0.5 * c.pixel_mm, 3.0 - depth) * inv_px + 0.5, 0.0, 1.0)
        foam = np.clip(np.minimum(depth - 3.0, 32.0 - depth) * inv_px + 0.5, 0.0, 1.0)
        c.hu += foam * (-900.0 - c.hu)
        c.record_tissue(None, foam, None)
        c.hu += shell * (self.hu - c.hu)
        c.record_tissue(None, shell, None)
