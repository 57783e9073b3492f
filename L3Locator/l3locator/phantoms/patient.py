"""The patient drawn from a seed: body size, spine, torso shape, tissue HU, and landmarks on them.

Everything here is in torso millimetres (+x patient right, +y anterior, +z superior; z = 0 at the
top of C1) and HU. The organ and bone builders (:mod:`l3locator.phantoms.anatomy`) lay their
shapes out relative to a :class:`Patient`.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .shapes import Layer
from .torso import Scoliosis, SubcutaneousFat, TorsoProfile, TorsoSection
from .vertebrae import Vertebra, build_spine


def uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    """One draw from ``U(lo, hi)`` as a Python float."""
    return float(rng.uniform(lo, hi))


def draw_tissue_hu(rng: np.random.Generator, contrast: str, oral_contrast: bool) -> dict[str, float]:
    """Tissue values (HU) for one scan; vessels and enhancing organs depend on the contrast phase."""
    fat = uniform(rng, -115.0, -85.0)
    hu = {
        "skin": uniform(rng, 0.0, 40.0), "fat": fat, "visceral_fat": fat + uniform(rng, -5.0, 15.0),
        "muscle": uniform(rng, 38.0, 58.0), "cortex": uniform(rng, 650.0, 950.0), "cancellous": uniform(rng, 60.0, 230.0),
        "disc": uniform(rng, 70.0, 100.0), "csf": uniform(rng, 5.0, 15.0), "cord": uniform(rng, 30.0, 40.0), "lung": uniform(rng, -880.0, -820.0),
        "cartilage": uniform(rng, 90.0, 220.0), "fluid": uniform(rng, 0.0, 15.0), "bowel_wall": 40.0, "marrow_fat": uniform(rng, -60.0, 10.0),
    }
    blood = uniform(rng, 35.0, 50.0)
    if contrast == "none":
        hu.update(artery=blood, vein=blood, liver=uniform(rng, 50.0, 68.0), spleen=uniform(rng, 40.0, 52.0),
                  kidney_cortex=uniform(rng, 28.0, 38.0), kidney_medulla=uniform(rng, 25.0, 35.0), pancreas=uniform(rng, 35.0, 48.0),
                  myocardium=uniform(rng, 40.0, 50.0), heart_blood=blood)
    elif contrast == "venous":
        hu.update(artery=uniform(rng, 140.0, 200.0), vein=uniform(rng, 120.0, 180.0), liver=uniform(rng, 95.0, 130.0),
                  spleen=uniform(rng, 105.0, 135.0), kidney_cortex=uniform(rng, 150.0, 200.0), kidney_medulla=uniform(rng, 120.0, 170.0),
                  pancreas=uniform(rng, 90.0, 120.0), myocardium=uniform(rng, 90.0, 120.0), heart_blood=uniform(rng, 130.0, 180.0))
    else:
        hu.update(artery=uniform(rng, 250.0, 380.0), vein=uniform(rng, 60.0, 110.0), liver=uniform(rng, 65.0, 85.0),
                  spleen=uniform(rng, 90.0, 140.0), kidney_cortex=uniform(rng, 180.0, 260.0), kidney_medulla=uniform(rng, 50.0, 80.0),
                  pancreas=uniform(rng, 100.0, 140.0), myocardium=uniform(rng, 100.0, 140.0), heart_blood=uniform(rng, 220.0, 350.0))
    hu["bowel_content"] = uniform(rng, 200.0, 300.0) if oral_contrast else hu["fluid"] + 10.0
    return hu


def _scaled(section: TorsoSection, sx: float, sy: float) -> TorsoSection:
    """A keyframe section with widths scaled by ``sx`` and depths by ``sy`` (body size)."""
    return section._replace(
        cavity_half_width_mm=section.cavity_half_width_mm * sx, cavity_front_mm=section.cavity_front_mm * sy,
        cavity_back_mm=section.cavity_back_mm * sy, side_muscle_mm=section.side_muscle_mm * sx, front_muscle_mm=section.front_muscle_mm * sy)


class Patient:
    """The anatomy drawn from one random generator: spine, torso profile, tissue HU, landmarks.

    Attributes:
        rng: the anatomy generator (the organ builders keep drawing from it, in painting order).
        variant: the segmentation variant (:data:`~l3locator.phantoms.vertebrae.VARIANTS`).
        params: what was drawn (JSON-friendly), completed by the builders.
        vertebrae: C1 down to the last lumbar vertebra; ``thoracic`` / ``lumbar`` the subsets.
        sacral_segments_mm: lengths of the sacral segments, top down.
        hu: tissue values (HU) by name.
        torso: the torso shape as functions of z.
        sacrum_top_mm, femoral_heads_mm, iliac_crest_mm: heights of those landmarks.
    """

    def __init__(self, rng: np.random.Generator, variant: str):
        self.rng = rng
        self.variant = variant
        self.params: dict[str, Any] = {"variant": variant}
        p = self.params
        scale = uniform(rng, 0.9, 1.1)
        p["scale_z"] = scale
        self.vertebrae, self.sacral_segments_mm = build_spine(rng, variant, scale)
        self.by_name = {v.name: v for v in self.vertebrae}
        self.thoracic = [v for v in self.vertebrae if v.region == "T"]
        self.lumbar = [v for v in self.vertebrae if v.region == "L"]
        p["scale_x"], p["scale_y"] = uniform(rng, 0.86, 1.14), uniform(rng, 0.85, 1.15)
        p["fat"] = uniform(rng, 0.0, 1.0) ** 1.3
        p["visceral_fat"] = min(1.0, max(0.0, p["fat"] + uniform(rng, -0.35, 0.35)))
        p["lordosis_mm"], p["kyphosis_mm"] = uniform(rng, -6.0, 10.0), uniform(rng, -5.0, 8.0)
        p["scoliosis_mm"], p["scoliosis_wavelength_mm"], p["scoliosis_phase"] = (
            uniform(rng, 0.0, 6.0), uniform(rng, 250.0, 500.0), uniform(rng, 0, 2 * math.pi))
        p["roll_deg"] = uniform(rng, -4.0, 4.0)
        p["contrast"] = str(rng.choice(["none", "venous", "arterial"], p=[0.45, 0.4, 0.15]))
        p["oral_contrast"] = bool(rng.random() < 0.2)
        self.hu = draw_tissue_hu(rng, p["contrast"], p["oral_contrast"])
        self.torso = self._build_torso()
        self._place_vertebrae()

    def _build_torso(self) -> TorsoProfile:
        """Torso keyframes from the neck to the thighs, scaled to the body size; sets the pelvic landmarks."""
        p, rng, v = self.params, self.rng, self.by_name
        vf = 1.0 + 0.12 * p["visceral_fat"]
        last_t, lum = self.thoracic[-1], self.lumbar
        first_l, last_l = lum[0], lum[-1]
        z_s1 = last_l.bottom_mm - last_l.disc_mm
        self.sacrum_top_mm = z_s1
        self.femoral_heads_mm = z_fh = z_s1 - uniform(rng, 85.0, 105.0) * p["scale_z"]
        self.iliac_crest_mm = last_l.top_mm + uniform(rng, -10.0, 40.0)  # from the last lumbar body's top up to mid L4
        mid_l = lum[len(lum) // 2]
        lord = p["lordosis_mm"]
        kyph = p["kyphosis_mm"]
        t_mid = self.thoracic[len(self.thoracic) // 2]
        S = TorsoSection
        # Columns, as TorsoSection: cavity half-width, front, back, front/back exponents, side/front muscle,
        # spine offset, erector lateral, erector gap, erector half-width, half-depth, fat scale.
        keyframes = [
            (v["C3"].mid_mm, S(38, 28, 4, 2.0, 2.2, 20, 5, -10, 22, 30, 22, 24, 0.35)),
            (v["C7"].mid_mm, S(46, 30, 6, 2.0, 2.2, 30, 6, -6, 23, 32, 24, 24, 0.45)),
            (v["T1"].mid_mm, S(60, 38, 35, 2.0, 2.4, 95, 25, 26, 24, 34, 20, 18, 0.6)),
            (v["T3"].mid_mm, S(95, 62, 55, 2.1, 2.6, 62, 30, 26, 25, 36, 20, 16, 0.7)),
            (t_mid.mid_mm, S(120 * vf ** 0.3, 80, 65, 2.2, 2.8, 20, 16, 24 - kyph, 28, 36, 24, 18, 0.75)),
            (last_t.mid_mm, S(128 * vf ** 0.6, 86 * vf ** 0.6, 62, 2.3, 2.8, 11, 12, 23, 29, 38, 27, 21, 0.9)),
            (first_l.mid_mm, S(124 * vf, 84 * vf, 56, 2.4, 2.8, 10, 10, 26 + 0.4 * lord, 30, 40, 29, 23, 1.0)),
            (mid_l.mid_mm, S(122 * vf, 82 * vf, 48, 2.4, 2.8, 10, 10, 30 + lord, 31, 40, 30, 24, 1.0)),
            (last_l.mid_mm, S(130 * vf, 80 * vf, 42, 2.4, 2.8, 16, 10, 18 + 0.4 * lord, 29, 40, 28, 22, 1.05)),
            (z_s1 - 30, S(112 * vf, 78 * vf, 12, 2.3, 2.8, 45, 12, -16, 24, 30, 18, 12, 1.1)),
            (z_fh, S(72, 70, 8, 2.2, 2.6, 95, 25, -22, 22, 26, 14, 10, 1.1)),
            (z_fh - 80, S(62, 62, 6, 2.2, 2.6, 100, 30, -24, 22, 26, 14, 10, 1.1)),
        ]
        keyframes = [(z, _scaled(section, p["scale_x"], p["scale_y"])) for z, section in keyframes]
        fat_level = p["fat"]
        fat = SubcutaneousFat(6.0 + 60.0 * fat_level * uniform(rng, 0.7, 1.3), 6.0 + 40.0 * fat_level * uniform(rng, 0.7, 1.3),
                              5.0 + 22.0 * fat_level * uniform(rng, 0.7, 1.3))
        p["subcutaneous_fat_mm"] = [round(f, 1) for f in fat]
        body_depth = (np.array([vv.mid_mm for vv in reversed(self.vertebrae)]), np.array([vv.half_depth_mm for vv in reversed(self.vertebrae)]))
        scoliosis = Scoliosis(p["scoliosis_mm"], p["scoliosis_wavelength_mm"], p["scoliosis_phase"])
        return TorsoProfile(keyframes, scoliosis, body_depth, fat)

    def _place_vertebrae(self) -> None:
        """Put every vertebra on the spine line and tilt its endplates with the sagittal curve."""
        t = self.torso
        for v in self.vertebrae:
            v.x_mm = float(t.spine_x(v.mid_mm))
            v.y_mm = float(t.spine_y(v.mid_mm))
            dydz = float(t.spine_y(v.mid_mm + 5.0) - t.spine_y(v.mid_mm - 5.0)) / 10.0
            v.endplate_slope = -float(np.clip(dydz, -0.6, 0.6))

    # --- landmarks ----------------------------------------------------------------------------
    def vertebra(self, name: str) -> Vertebra:
        """The vertebra called ``name`` (e.g. ``"T8"``)."""
        return self.by_name[name]

    def bone_layers(self) -> list[Layer]:
        """Cortex + cancellous layers for a rod or polyline bone."""
        return [Layer(0.0, self.hu["cortex"], 0.0), Layer(1.6, self.hu["cancellous"], 35.0)]

    @property
    def femoral_head_x_mm(self) -> float:
        """|x| (mm) of the femoral head centres."""
        return 88.0 * self.params["scale_x"] ** 0.5

    @property
    def femoral_head_y_mm(self) -> float:
        """y (mm) of the femoral head centres."""
        return float(self.torso.spine_y(self.lumbar[-1].mid_mm)) + 45.0

    def sacrum_front_y(self, z: float) -> float:
        """y (mm) of the sacrum's anterior surface at height ``z`` (mm)."""
        return float(self.torso.spine_y(self.lumbar[-1].mid_mm)) - 10.0 - 0.6 * max(self.sacrum_top_mm - z, 0.0) * 0.5

    @staticmethod
    def canal_radii(v: Vertebra) -> tuple[float, float]:
        """Spinal canal semi-axes (x, y mm) at vertebra ``v``."""
        return {"C": (11.0, 7.0), "T": (8.0, 8.0), "L": (11.5, 8.5)}[v.region]

    def transverse_process_length(self, v: Vertebra) -> float:
        """Transverse process length (mm): lumbar ones by level with a random jitter (a draw), L3 longest."""
        if v.region == "L":
            lengths = {1: 13.0, 2: 21.0, 3: 30.0, 4: 24.0, 5: 18.0, 6: 16.0}
            return lengths[v.index] * (1.0 + 0.06 * float(self.rng.standard_normal()))
        if v.region == "T":
            return 21.0 - 6.0 * (v.index - 1) / max(len(self.thoracic) - 1, 1)
        return 8.0

    def cage_point(self, side: int, phi: float, z: float, outward: float) -> tuple[float, float, float]:
        """Torso point (mm) on the cavity wall at angle ``phi`` (rad) from the posterior midline, ``outward`` mm outside it."""
        s = self.torso.section(z)
        sx, sy = math.sin(phi), -math.cos(phi)
        half_width = float(s.cavity_half_width_mm)
        if sy > 0:
            half_depth, exponent = float(s.cavity_front_mm), float(s.front_exponent)
        else:
            half_depth, exponent = float(s.cavity_back_mm), float(s.back_exponent)
        r = (abs(sx / half_width) ** exponent + abs(sy / half_depth) ** exponent) ** (-1.0 / exponent) + outward
        return side * r * sx, r * sy, z
