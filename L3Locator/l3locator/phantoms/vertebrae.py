"""Vertebra ids, segmentation variants, and the spine's column of vertebrae (sizes and heights in mm).

Segment identity follows the ribs: a vertebra is thoracic if and only if it bears a rib pair, and
the lumbar vertebrae are the rib-free presacral vertebrae numbered from the top, so L3 is always
the third vertebra below the last rib-bearing one (see :mod:`l3locator.phantoms`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: VerSe vertebra ids by name (``"sacrum"`` covers all sacral segments).
VERSE_IDS: dict[str, int] = {
    **{f"C{n}": n for n in range(1, 8)},
    **{f"T{n}": 7 + n for n in range(1, 13)},
    **{f"L{n}": 19 + n for n in range(1, 6)},
    "L6": 25,
    "sacrum": 26,
    "T13": 28,
}
#: Vertebra name of every VerSe id in :data:`VERSE_IDS`.
VERTEBRA_NAMES: dict[int, str] = {label: name for name, label in VERSE_IDS.items()}
L3_LABEL = 22
VARIANTS = ("normal", "11_ribs", "13_ribs", "lumbarised", "sacralised")


@dataclass
class Vertebra:
    """One vertebra of the drawn spine (torso mm; z decreases caudally from the top of C1 at 0).

    ``region`` is ``"C"``, ``"T"`` (rib-bearing) or ``"L"``, ``index`` its 1-based number within
    the region. The body is ``height_mm`` tall, ``2 * half_width_mm`` wide and ``2 * half_depth_mm``
    deep, centred at ``(x_mm, y_mm)`` between ``bottom_mm`` and ``top_mm``, with the disc of
    ``disc_mm`` below it. ``endplate_slope`` is dz/dy of its endplates (perpendicular to the
    sagittal curve).
    """

    name: str
    label: int
    region: str
    index: int
    height_mm: float
    disc_mm: float
    half_width_mm: float
    half_depth_mm: float
    top_mm: float = 0.0
    bottom_mm: float = 0.0
    x_mm: float = 0.0
    y_mm: float = 0.0
    endplate_slope: float = 0.0

    @property
    def mid_mm(self) -> float:
        """Height of the body's centre (mm)."""
        return (self.top_mm + self.bottom_mm) / 2


def draw_variant(rng: np.random.Generator) -> str:
    """A variant at realistic rates: 2.5% each for 11/13 rib pairs, 4% each for lumbarisation/sacralisation."""
    u = rng.random()
    for name, cumulative in (("11_ribs", 0.025), ("13_ribs", 0.05), ("lumbarised", 0.09), ("sacralised", 0.13)):
        if u < cumulative:
            return name
    return "normal"


def build_spine(rng: np.random.Generator, variant: str, scale: float) -> tuple[list[Vertebra], list[float]]:
    """Vertebrae from C1 down, stacked with their discs, and the sacral segment lengths (mm).

    Sizes grow caudally and are scaled by ``scale``; heights and discs get a random jitter. The
    vertebrae's x/y are placed later, on the torso's spine line.
    """
    n_thoracic = {"11_ribs": 11, "13_ribs": 13}.get(variant, 12)
    n_lumbar = {"lumbarised": 6, "sacralised": 4}.get(variant, 5)
    verts: list[Vertebra] = []
    for n in range(1, 8):
        verts.append(Vertebra(f"C{n}", VERSE_IDS[f"C{n}"], "C", n, 13.0 + 0.3 * n, 4.5, 9.0 + 0.8 * n, 7.5 + 0.35 * n))
    for n in range(1, n_thoracic + 1):
        f = (n - 1) / (n_thoracic - 1)
        verts.append(Vertebra(f"T{n}", VERSE_IDS[f"T{n}"], "T", n, 17.5 + 7.0 * f, 4.0 + 3.5 * f, 14.0 + 7.0 * f, 8.5 + 6.0 * f))
    for n in range(1, n_lumbar + 1):
        f = min((n - 1) / 4.0, 1.0)
        verts.append(Vertebra(f"L{n}", VERSE_IDS[f"L{n}"], "L", n, 26.5 + 3.0 * f, 9.0 + 3.0 * f, 23.0 + 3.5 * f, 16.0 + 2.0 * f))
    verts[-1].disc_mm = 10.0
    z = 0.0
    for v in verts:
        jitter = 1.0 + 0.04 * float(rng.standard_normal())
        v.height_mm *= scale * jitter
        v.disc_mm *= scale * (1.0 + 0.08 * float(rng.standard_normal()))
        v.half_width_mm *= scale
        v.half_depth_mm *= scale
        v.top_mm, v.bottom_mm = z, z - v.height_mm
        z = v.bottom_mm - v.disc_mm
    segments = {"lumbarised": [22.0, 19.0, 16.0, 13.0], "sacralised": [27.0, 24.0, 22.0, 19.0, 16.0, 13.0]}.get(
        variant, [24.0, 22.0, 19.0, 16.0, 13.0])
    return verts, [s * scale for s in segments]
