"""Sacrum and pelvis: sacral segments (with alae, canal and dorsal plate), iliac wings, hips and femora.

The sacrum starts below the last lumbar vertebra (its segment count follows the variant) and
carries the VerSe sacrum label; the iliac crest top lies near the last lumbar level.
"""

from __future__ import annotations

import math

import numpy as np

from .patient import Patient, uniform
from .shapes import Bar, Blob, EllipseKey, Item, Layer, Polyline, PolylineKey, Tilt, ellipsoid_keys, tube_keys
from .vertebrae import VERSE_IDS


def _blob_bone(hu: dict[str, float]) -> list[Layer]:
    """Cortex + cancellous layers for an ellipsoid bone (acetabulum, femoral head, trochanter)."""
    return [Layer(0.0, hu["cortex"] * 0.85, 0.0, 0.0), Layer(2.0, hu["cancellous"], 35.0, 1.5)]


def _slab(z_bottom: float, z_top: float, x: float, y: float, a: float, b: float) -> list[EllipseKey]:
    """An upright elliptic cylinder from ``z_bottom`` to ``z_top`` (mm)."""
    return [EllipseKey(z_bottom, x, y, a, b, 0.0), EllipseKey(z_top, x, y, a, b, 0.0)]


def sacrum(patient: Patient) -> list[Item]:
    """Sacral segments curving back along the sacral slope, each with alae (upper three), canal and dorsal plate."""
    rng, hu = patient.rng, patient.hu
    last = patient.lumbar[-1]
    beta0, beta1 = math.radians(uniform(rng, 35.0, 50.0)), math.radians(uniform(rng, -10.0, 10.0))
    patient.params["sacral_slope_deg"] = round(math.degrees(beta0), 1)
    segments = patient.sacral_segments_mm
    total = sum(segments)
    x, y, z, s = last.x_mm, last.y_mm - 3.0, patient.sacrum_top_mm, 0.0
    label = VERSE_IDS["sacrum"]
    w0, d0 = last.half_width_mm * 1.0, last.half_depth_mm * 1.0
    bone = [Layer(0.0, hu["cortex"] * 0.9, 0.0, 0.0), Layer(1.5, hu["cancellous"], 35.0, 0.0)]
    items: list[Item] = []
    for n, length in enumerate(segments):
        beta = beta0 + (beta1 - beta0) * (s + length / 2) / total
        dy, dz = -math.sin(beta) * length, -math.cos(beta) * length
        cy, cz = y + dy / 2, z + dz / 2
        shrink = 1.0 - 0.75 * (s + length / 2) / total
        w, d = w0 * shrink + 4.0, d0 * shrink + 2.0
        hz = (length / 2) / max(math.cos(beta), 0.5)
        tilt = Tilt(-math.tan(beta), cy)
        items.append(Blob(_slab(cz - hz, cz + hz, x, cy, w, d), bone, label=label, vertebral_body=True, tilt=tilt))
        if n < 3:
            ala = (34.0, 26.0, 14.0)[n] * (1.0 if len(segments) >= 5 else 0.9)
            for side in (1, -1):
                ala_keys = _slab(cz - hz, cz + hz, x + side * (w + ala / 2 - 6.0), cy - 4.0, ala / 2 + 6.0, d * 0.8)
                items.append(Blob(ala_keys, bone, label=label, tilt=tilt))
        # sacral canal and dorsal plate
        canal = _slab(cz - hz, cz + hz, x, cy - d - 5.0, max(11.0 * shrink, 3.0), max(5.0 * shrink, 2.0))
        items.append(Blob(canal, [Layer(0.0, hu["visceral_fat"] + 60.0)], tilt=tilt))
        items.append(Blob(_slab(cz - hz, cz + hz, x, cy - d - 13.0, w * 0.75, 4.0), [Layer(0.0, hu["cortex"] * 0.8)], label=label, tilt=tilt))
        y, z, s = y + dy, z + dz, s + length
    return items


def pelvis(patient: Patient) -> list[Item]:
    """Per side: iliac wing, acetabulum, hip joint, femoral head, neck, trochanter, shaft, pubic and ischial rami."""
    rng, hu, torso = patient.rng, patient.hu, patient.torso
    bone = patient.bone_layers()
    y_spine = patient.lumbar[-1].y_mm
    zc, zs1, zfh = patient.iliac_crest_mm, patient.sacrum_top_mm, patient.femoral_heads_mm
    x_fh, y_fh = patient.femoral_head_x_mm, patient.femoral_head_y_mm
    r_fh = uniform(rng, 21.0, 25.0) * patient.params["scale_z"]
    patient.params["pelvis_mm"] = {"iliac_crest": round(zc, 1), "sacrum_top": round(zs1, 1), "femoral_heads": round(zfh, 1)}
    items: list[Item] = []
    for s in (1, -1):
        def arc(z: float, xc: float, yc: float, rx: float, ry: float, phi0: float, phi1: float, hw: float) -> PolylineKey:
            """Iliac wing as an arc convex laterally (centre and x-radius in units of the cavity half-width; angles in degrees)."""
            a = float(torso.section(z).cavity_half_width_mm)
            return PolylineKey(z, [(s * (xc + rx * math.cos(f)) * a, yc + ry * math.sin(f)) for f in np.radians(np.linspace(phi0, phi1, 6))], hw)

        def line(z: float, p0: tuple[float, float], p1: tuple[float, float], hw: float) -> PolylineKey:
            """The wing's lower part as a straight plate from ``p0`` to ``p1`` (|x|, y mm)."""
            return PolylineKey(z, [(s * (p0[0] + (p1[0] - p0[0]) * t), p0[1] + (p1[1] - p0[1]) * t) for t in np.linspace(0.0, 1.0, 6)], hw)

        keys = [
            arc(zc, 0.35, y_spine + 50.0, 0.55, 65.0, -45.0, -15.0, 3.5),
            arc(zc - 15.0, 0.35, y_spine + 50.0, 0.55, 65.0, -80.0, 5.0, 5.0),
            arc(zs1 - 5.0, 0.33, y_spine + 50.0, 0.57, 65.0, -82.0, 12.0, 5.0),
            arc(zs1 - 45.0, 0.33, y_spine + 55.0, 0.6, 65.0, -75.0, 10.0, 7.0),
            line(zfh + 28.0, (x_fh - 28.0, y_fh - 40.0), (x_fh - 5.0, y_fh + 35.0), 11.0),
            line(zfh + 12.0, (x_fh - 26.0, y_fh - 30.0), (x_fh - 10.0, y_fh + 28.0), 9.0),
        ]
        items.append(Polyline(keys, bone))
        # acetabulum (opens laterally), joint space, femoral head, neck, trochanter, shaft
        items.append(Blob(ellipsoid_keys(zfh + 4.0, r_fh + 8.0, s * (x_fh - 6.0), y_fh, r_fh + 9.0, r_fh + 9.0), _blob_bone(hu)))
        items.append(Blob(ellipsoid_keys(zfh, r_fh + 2.5, s * x_fh, y_fh, r_fh + 2.5, r_fh + 2.5), [Layer(0.0, hu["muscle"] + 15.0)]))
        items.append(Blob(ellipsoid_keys(zfh, r_fh, s * x_fh, y_fh, r_fh, r_fh), _blob_bone(hu)))
        troch_x, troch_y = s * (x_fh + 42.0), y_fh - 12.0
        items.append(Bar((s * x_fh, y_fh, zfh), (troch_x, troch_y, zfh - 28.0), 13.0, 14.0, 13.0, bone))
        items.append(Blob(ellipsoid_keys(zfh - 20.0, 28.0, troch_x, troch_y, 17.0, 21.0), _blob_bone(hu)))
        shaft = tube_keys([(troch_x - s * 5.0, troch_y + 4.0, zfh - 40.0), (troch_x - s * 12.0, troch_y + 8.0, zfh - 120.0)], 14.0)
        items.append(Blob(shaft, [Layer(0.0, hu["cortex"]), Layer(5.0, hu["marrow_fat"], 10.0)]))
        # pubic and ischial rami
        items.append(Bar((s * (x_fh - 18.0), y_fh + 22.0, zfh - 4.0), (s * 6.0, y_fh + 48.0, zfh - 30.0), 7.0, 8.0, 9.0, bone))
        items.append(Bar((s * (x_fh - 12.0), y_fh - 24.0, zfh - 6.0), (s * (x_fh - 28.0), y_fh - 36.0, zfh - 60.0), 9.0, 11.0, 12.0, bone))
    return items
