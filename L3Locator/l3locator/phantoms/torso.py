"""Torso geometry as functions of height: cavity, muscle wall, fat, spine line, erector spinae, diaphragm.

All lengths are torso millimetres (+x patient right, +y anterior, +z superior, origin on the torso
axis); the torso's cross-section at each height is a :class:`TorsoSection` interpolated linearly
between keyframes drawn for the patient (:mod:`l3locator.phantoms.patient`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np


class TorsoSection(NamedTuple):
    """The torso's cross-section at one height (mm unless said otherwise; scalars or arrays).

    The body cavity is an asymmetric superellipse: half-width ``cavity_half_width_mm``, half-depths
    ``cavity_front_mm`` (anterior) and ``cavity_back_mm`` (posterior), exponents ``front_exponent`` /
    ``back_exponent``. The muscle wall is ``side_muscle_mm`` / ``front_muscle_mm`` thick outside it.
    The vertebral centre lies at ``y = -cavity_back_mm + spine_offset_mm``. The erector spinae sit
    ``erector_lateral_mm`` either side of the spine and ``erector_gap_mm`` behind the vertebral body,
    with semi-axes ``erector_half_width_mm`` / ``erector_half_depth_mm``. ``fat_scale`` (unitless)
    scales the subcutaneous fat.
    """

    cavity_half_width_mm: Any
    cavity_front_mm: Any
    cavity_back_mm: Any
    front_exponent: Any
    back_exponent: Any
    side_muscle_mm: Any
    front_muscle_mm: Any
    spine_offset_mm: Any
    erector_lateral_mm: Any
    erector_gap_mm: Any
    erector_half_width_mm: Any
    erector_half_depth_mm: Any
    fat_scale: Any


class SkinOutline(NamedTuple):
    """Skin half-width and anterior / posterior half-depths (mm; scalars or arrays)."""

    half_width_mm: Any
    front_mm: Any
    back_mm: Any


class Scoliosis(NamedTuple):
    """Lateral spine curve: ``x = amplitude_mm * sin(2 pi z / wavelength_mm + phase_rad)``."""

    amplitude_mm: float
    wavelength_mm: float
    phase_rad: float


class SubcutaneousFat(NamedTuple):
    """Subcutaneous fat thickness (mm) in front, at the sides and at the back, before ``fat_scale``."""

    front_mm: float
    side_mm: float
    back_mm: float


class TorsoProfile:
    """The torso's shape as functions of z (mm): sections, skin outline, spine line, back muscles.

    Args:
        keyframes: ``(z_mm, section)`` pairs, in any order.
        scoliosis: the spine's lateral curve.
        vertebral_body_depth: ``(z_mm, half_depth_mm)`` arrays of the vertebral bodies, ascending z.
        subcutaneous_fat: fat thickness outside the muscle wall.
    """

    def __init__(self, keyframes: list[tuple[float, TorsoSection]], scoliosis: Scoliosis, vertebral_body_depth: tuple[np.ndarray, np.ndarray],
                 subcutaneous_fat: SubcutaneousFat):
        order = np.argsort([z for z, _ in keyframes])
        self.zs = np.asarray([z for z, _ in keyframes], dtype=np.float64)[order]
        table = np.asarray([section for _, section in keyframes], dtype=np.float64)[order]
        self.columns = TorsoSection(*(np.ascontiguousarray(table[:, n]) for n in range(len(TorsoSection._fields))))
        self.scoliosis = scoliosis
        self.body_z, self.body_half_depth_mm = vertebral_body_depth
        self.fat = subcutaneous_fat

    def section(self, z: Any) -> TorsoSection:
        """The cross-section at height(s) ``z`` (mm), interpolated between keyframes."""
        return TorsoSection(*(np.interp(z, self.zs, column) for column in self.columns))

    def spine_y(self, z: Any) -> Any:
        """y (mm) of the vertebral centres at height(s) ``z``."""
        s = self.section(z)
        return -s.cavity_back_mm + s.spine_offset_mm

    def spine_x(self, z: Any) -> Any:
        """x (mm) of the vertebral centres at height(s) ``z`` (the scoliosis curve)."""
        sc = self.scoliosis
        return sc.amplitude_mm * np.sin(2 * np.pi * np.asarray(z) / sc.wavelength_mm + sc.phase_rad)

    def body_half_depth(self, z: Any) -> Any:
        """Half-depth (mm) of the vertebral body at height(s) ``z``."""
        return np.interp(z, self.body_z, self.body_half_depth_mm)

    def back_depth(self, z: Any) -> Any:
        """Posterior muscle thickness (mm) behind the cavity so that the erector spinae fit inside the skin."""
        s = self.section(z)
        return -s.spine_offset_mm + self.body_half_depth(z) + s.erector_gap_mm + s.erector_half_depth_mm + 4.0

    def outline(self, z: Any) -> SkinOutline:
        """The skin's half-width and anterior / posterior half-depths (mm) at height(s) ``z``."""
        s = self.section(z)
        f = s.fat_scale
        half_width = s.cavity_half_width_mm + s.side_muscle_mm + f * self.fat.side_mm
        front = s.cavity_front_mm + s.front_muscle_mm + f * self.fat.front_mm
        back = s.cavity_back_mm + self.back_depth(z) + f * self.fat.back_mm
        return SkinOutline(half_width, front, back)


@dataclass
class Diaphragm:
    """Diaphragm surface z(x, y) in torso mm: two paraboloid domes, lowest in the posterior recesses.

    Attributes:
        right_dome_z_mm, left_dome_z_mm: height of the right / left dome tops.
        recess_z_mm: lowest point (the posterior costophrenic recesses).
        dome_x_mm, dome_y_mm: where the dome tops are (|x| and y).
        width_scale_mm, front_scale_mm, back_scale_mm: distances over which the surface falls by
            ``lateral_drop_mm`` / ``front_drop_mm`` / the back drop (down to the recess).
    """

    right_dome_z_mm: float
    left_dome_z_mm: float
    recess_z_mm: float
    dome_x_mm: float
    dome_y_mm: float
    width_scale_mm: float
    front_scale_mm: float
    back_scale_mm: float
    lateral_drop_mm: float
    front_drop_mm: float

    def __post_init__(self) -> None:
        self.back_drop_mm = max(self.right_dome_z_mm, self.left_dome_z_mm) - self.recess_z_mm + 25.0

    def height(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Diaphragm height (mm) under each torso point."""
        u = (np.abs(x) - self.dome_x_mm) / self.width_scale_mm
        va = np.maximum(y - self.dome_y_mm, 0.0) / self.front_scale_mm
        vp = np.maximum(self.dome_y_mm - y, 0.0) / self.back_scale_mm
        peak = np.where(x > 0, self.right_dome_z_mm, self.left_dome_z_mm)
        z = peak - self.lateral_drop_mm * u * u - self.front_drop_mm * va * va - self.back_drop_mm * vp * vp
        return np.maximum(z, self.recess_z_mm)

    @property
    def top_mm(self) -> float:
        """Height of the higher dome (mm)."""
        return max(self.right_dome_z_mm, self.left_dome_z_mm)
