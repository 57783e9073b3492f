"""The acquisition: which body region is scanned, slice thickness, field of view, table, noise, positioning.

Every acquisition value is drawn from its own generator whatever the caller's arguments, so an
argument changes only itself (and never the anatomy).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .patient import Patient, uniform

EXTENTS = ("abdomen", "chest", "whole_body", "l3_edge", "random")
#: Slice thicknesses (mm) drawn when none is given: the usual clinical reconstructions.
THICKNESSES_MM = (0.625, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 5.0)
_THICKNESS_WEIGHTS = (0.1, 0.15, 0.15, 0.1, 0.1, 0.1, 0.1, 0.2)
_EXTENT_WEIGHTS = {"abdomen": 0.5, "chest": 0.15, "whole_body": 0.15, "l3_edge": 0.2}
#: Probability of arms down (beside the body) by extent.
_ARMS_DOWN = {"abdomen": 0.15, "chest": 0.1, "whole_body": 0.6, "l3_edge": 0.15}


@dataclass(frozen=True)
class Acquisition:
    """The drawn acquisition (mm, HU), before the caller's arguments override any of it.

    Attributes:
        extent: body region (one of :data:`EXTENTS` but ``"random"``).
        thickness_mm: slice thickness (= spacing).
        range_fractions: four uniforms in [0, 1) that place the scan's ends (see :func:`scan_range`).
        fov_mm: in-plane field of view before it is widened to hold the body.
        torso_offset_mm: torso centre in scanner (x, y).
        origin_shift_mm: shift of the RAS origin (x, y, z).
        noise_hu: image noise standard deviation.
        noise_grain_mm: correlation length of the noise (Gaussian sigma, mm).
        has_table, table_gap_mm, table_hu: the patient table, its gap below the back, its shell HU.
        arms_draw: uniform in [0, 1) deciding arms down (against the extent's rate).
    """

    extent: str
    thickness_mm: float
    range_fractions: np.ndarray
    fov_mm: float
    torso_offset_mm: tuple[float, float]
    origin_shift_mm: np.ndarray
    noise_hu: float
    has_table: bool
    table_gap_mm: float
    table_hu: float
    arms_draw: float
    noise_grain_mm: float

    def arms_down(self, extent: str) -> bool:
        """Whether the arms lie beside the body in a scan of ``extent``."""
        return self.arms_draw < _ARMS_DOWN[extent]


def draw_acquisition(rng: np.random.Generator) -> Acquisition:
    """Draw every acquisition value, in a fixed order."""
    extent = str(rng.choice(list(_EXTENT_WEIGHTS), p=list(_EXTENT_WEIGHTS.values())))
    thickness = float(rng.choice(THICKNESSES_MM, p=_THICKNESS_WEIGHTS))
    fractions = rng.random(4)
    fov = uniform(rng, 330.0, 500.0)
    offset = (uniform(rng, -15.0, 15.0), uniform(rng, -10.0, 25.0))
    origin_shift = rng.uniform(-250.0, 250.0, 3)
    noise = uniform(rng, 8.0, 30.0)
    has_table, table_gap, table_hu, arms_draw = bool(rng.random() < 0.85), uniform(rng, 0.0, 12.0), uniform(rng, 150.0, 400.0), float(rng.random())
    grain = uniform(rng, 0.5, 1.5)
    return Acquisition(extent, thickness, fractions, fov, offset, origin_shift, noise, has_table, table_gap, table_hu, arms_draw, grain)


class ScanRange(NamedTuple):
    """The slices of a scan: centre of the lowest one (torso mm), their number, and which edge cuts L3 (``l3_edge`` only)."""

    lowest_z_mm: float
    num_slices: int
    l3_cut_by: str | None


def scan_range(patient: Patient, extent: str, fractions: np.ndarray, thickness: float) -> ScanRange:
    """Where a scan of ``extent`` starts and stops on ``patient``, placed by ``fractions`` (four uniforms)."""
    v, thoracic, lumbar = patient.by_name, patient.thoracic, patient.lumbar
    u = fractions

    def mix(lo: float, hi: float, t: float) -> float:
        return lo + (hi - lo) * float(t)

    edge = None
    t10 = thoracic[-3]
    if extent == "abdomen":
        top = mix(t10.mid_mm - 0.6 * t10.height_mm, t10.mid_mm + 0.5 * t10.height_mm, u[0])
        bottom = patient.sacrum_top_mm - mix(15.0, 100.0, u[1])
    elif extent == "chest":
        top = mix(v["C6"].mid_mm, v["T1"].top_mm + 10.0, u[0])
        bottom = mix(thoracic[-1].mid_mm, lumbar[0].mid_mm, u[1])
    elif extent == "whole_body":
        top = mix(v["C2"].mid_mm, v["C5"].mid_mm, u[0])
        bottom = patient.femoral_heads_mm - mix(10.0, 60.0, u[1])
    else:
        l3 = v["L3"]
        cut = mix(l3.bottom_mm, l3.top_mm, mix(0.2, 0.8, u[2]))
        if u[3] < 0.5:
            edge, top, bottom = "lower", mix(thoracic[-6].mid_mm, thoracic[-2].mid_mm, u[0]), cut
        else:
            edge, top, bottom = "upper", cut, patient.sacrum_top_mm - mix(15.0, 100.0, u[1])
    n = int(math.floor((top - bottom) / thickness + 1e-9)) + 1
    z_lo = top - (n - 1) * thickness if edge == "upper" else bottom
    return ScanRange(z_lo, n, edge)
