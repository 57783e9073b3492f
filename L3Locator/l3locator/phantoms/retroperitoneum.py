"""Retroperitoneum and back: kidneys, diaphragmatic crura, psoas, quadratus lumborum, iliacus, erector spinae."""

from __future__ import annotations

import numpy as np

from .patient import Patient, uniform
from .shapes import Blob, EllipseKey, Item, Layer, ellipsoid_keys

#: Psoas cross-section growth from L1 down (fraction of its full size); the last lumbar level is full size.
_PSOAS_GROWTH = (0.25, 0.55, 0.78, 0.92, 1.0, 1.0)


def kidneys_and_crura(patient: Patient) -> list[Item]:
    """Kidneys (left higher; cortex, medulla, sinus fat) and the diaphragmatic crura hugging the aorta."""
    rng, hu = patient.rng, patient.hu
    lumbar, l1, last_t = patient.lumbar, patient.lumbar[0], patient.thoracic[-1]
    # left kidney's centre from mid L1 to the L2/L3 disc (real kidneys sit a level higher or lower between patients)
    zc_left = lumbar[1].top_mm - uniform(rng, -35.0, 45.0)
    zc_right = zc_left - uniform(rng, 5.0, 20.0)
    patient.params["kidney_centres_mm"] = [round(zc_right, 1), round(zc_left, 1)]
    items: list[Item] = []
    for side, zc in ((1, zc_right), (-1, zc_left)):  # upper poles medial and posterior
        hz = uniform(rng, 50.0, 60.0)
        x = l1.x_mm + side * (l1.half_width_mm + uniform(rng, 40.0, 50.0))
        y = l1.y_mm - 4.0
        angle = side * uniform(rng, 0.4, 0.7)
        keys = ellipsoid_keys(zc, hz, x + side * 8.0, y, uniform(rng, 26.0, 32.0), uniform(rng, 22.0, 27.0), angle, shift=(-side * 16.0, -6.0))
        items.append(Blob(keys, [Layer(0.0, hu["kidney_cortex"]), Layer(6.0, hu["kidney_medulla"], 0.0, 5.0)]))
        items.append(Blob(ellipsoid_keys(zc, hz * 0.45, x - side * 10.0, y + 6.0, 11.0, 8.0, angle), [Layer(0.0, hu["visceral_fat"] + 20.0)],
                          tissue="vat"))  # renal sinus fat
    for side in (1, -1):
        levels = (lumbar[1], l1, last_t, patient.thoracic[-2])
        keys = [EllipseKey(v.mid_mm, v.x_mm + side * (v.half_width_mm * 0.55), v.y_mm + v.half_depth_mm + 6.0, 5.0, 13.0, side * 0.35)
                for v in levels]
        items.append(Blob(keys, [Layer(0.0, hu["muscle"])], tissue="muscle"))
    return items


def back_and_flank_muscles(patient: Patient) -> list[Item]:
    """Per side: psoas (from L1, growing caudally, over the hip), quadratus lumborum, iliacus, erector spinae."""
    rng, torso = patient.rng, patient.torso
    lumbar, l1, last_t = patient.lumbar, patient.lumbar[0], patient.thoracic[-1]
    z_s1, z_fh, z_crest = patient.sacrum_top_mm, patient.femoral_heads_mm, patient.iliac_crest_mm
    x_fh, y_fh = patient.femoral_head_x_mm, patient.femoral_head_y_mm
    muscle = [Layer(0.0, patient.hu["muscle"])]
    size = uniform(rng, 0.8, 1.2)
    items: list[Item] = []
    for side in (1, -1):
        keys = [EllipseKey(l1.top_mm, l1.x_mm + side * (l1.half_width_mm + 2.0), l1.y_mm - 2.0, 3.0, 3.0, 0.0)]
        for n, v in enumerate(lumbar):
            g = _PSOAS_GROWTH[min(n, len(_PSOAS_GROWTH) - 1)] if n < len(lumbar) - 1 else 1.0
            a, b = 22.0 * g * size, 17.0 * g * size
            keys.append(EllipseKey(v.mid_mm, v.x_mm + side * (v.half_width_mm + a * 0.6), v.y_mm + 5.0 + 10.0 * n / len(lumbar), a, b, side * 0.3))
        pelvic_width = float(torso.section(z_s1 - 30.0).cavity_half_width_mm)
        keys.append(EllipseKey(z_s1 - 30.0, side * (0.45 * pelvic_width), y_fh - 5.0, 24.0 * size, 20.0 * size, side * 0.2))
        keys.append(EllipseKey(z_fh, side * (x_fh - 20.0), y_fh + 35.0, 20.0, 15.0, 0.0))
        keys.append(EllipseKey(z_fh - 50.0, side * (x_fh - 10.0), y_fh + 35.0, 18.0, 14.0, 0.0))
        items.append(Blob(keys, muscle, tissue="muscle"))
        # quadratus lumborum: T12 to the iliac crest, beside the transverse process tips
        keys = [EllipseKey(v.mid_mm, v.x_mm + side * (v.half_width_mm + 48.0), v.y_mm - 20.0, 18.0 * min(1.0, 0.4 + 0.3 * n), 9.0, side * 0.5)
                for n, v in enumerate([last_t] + lumbar) if v.mid_mm > z_crest - 20]
        keys.append(EllipseKey(z_crest - 20.0, keys[-1].x_mm, keys[-1].y_mm, 8.0, 6.0, side * 0.5))
        items.append(Blob(keys, muscle, tissue="muscle"))
        # iliacus in the iliac fossa
        keys = []
        for z in np.linspace(z_crest - 8.0, z_fh + 15.0, 4):
            a = float(torso.section(z).cavity_half_width_mm)
            keys.append(EllipseKey(float(z), side * 0.72 * a, y_fh - 20.0 + 0.2 * (z_crest - z), 16.0, 24.0, -side * 0.5))
        items.append(Blob(keys, muscle, tissue="muscle"))
        # erector spinae along the spine
        keys = []
        for v in patient.vertebrae:
            s = torso.section(v.mid_mm)
            lateral, gap, half_width, half_depth = (float(x) for x in (s.erector_lateral_mm, s.erector_gap_mm, s.erector_half_width_mm,
                                                                      s.erector_half_depth_mm))
            keys.append(EllipseKey(v.mid_mm, v.x_mm + side * lateral, v.y_mm - v.half_depth_mm - gap, half_width, half_depth, 0.0))
        z_bottom = z_s1 - 40.0
        keys.append(EllipseKey(z_bottom, side * 20.0, patient.sacrum_front_y(z_bottom) - 30.0, 14.0, 8.0, 0.0))
        items.append(Blob(keys, [Layer(0.0, patient.hu["muscle"] + 3.0)], tissue="muscle"))
    return items
