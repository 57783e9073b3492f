"""Chest and neck organs: lungs, mediastinum, heart, airways, oesophagus, thyroid and neck vessels."""

from __future__ import annotations

from typing import NamedTuple

from .body import Lungs
from .canvas import AIR_HU
from .patient import Patient, uniform
from .shapes import Bar, Blob, EllipseKey, Item, Layer, ellipsoid_keys, tube_keys
from .torso import Diaphragm


class ChestLandmarks(NamedTuple):
    """Where the great vessels attach (torso mm): the heart's centre height, half-height and y, the carina's height."""

    heart_z_mm: float
    heart_half_height_mm: float
    heart_y_mm: float
    carina_z_mm: float


def chest_organs(patient: Patient, diaphragm: Diaphragm) -> tuple[list[Item], ChestLandmarks]:
    """Lungs, mediastinum, heart (with septum), trachea and bronchi, oesophagus, in painting order."""
    rng, hu, torso = patient.rng, patient.hu, patient.torso
    t1 = patient.vertebra("T1")
    items: list[Item] = [Lungs(diaphragm, t1.top_mm + uniform(rng, 10.0, 25.0), hu["lung"])]
    # mediastinum: from the apex down to the heart, between spine and sternum
    keys = []
    for name, half_width in (("T1", 22.0), ("T3", 28.0), ("T5", 36.0), ("T7", 40.0)):
        v = patient.vertebra(name)
        spine_front = v.y_mm + v.half_depth_mm
        front = float(torso.section(v.mid_mm).cavity_front_mm)
        keys.append(EllipseKey(v.mid_mm, v.x_mm - 6.0, (spine_front + front) / 2, half_width, (front - spine_front) / 2 + 4.0, 0.0))
    keys.append(EllipseKey(diaphragm.left_dome_z_mm - 15.0, keys[-1].x_mm, keys[-1].y_mm, 30.0, keys[-1].semi_y_mm * 0.8, 0.0))
    items.append(Blob(keys, [Layer(0.0, hu["visceral_fat"] + 15.0)]))
    # heart sits on the diaphragm, apex to the left and anterior
    t8 = patient.vertebra("T8")
    hz = uniform(rng, 50.0, 62.0)
    zc = diaphragm.left_dome_z_mm - 12.0 + hz
    y_heart = t8.y_mm + t8.half_depth_mm + uniform(rng, 62.0, 75.0)
    a_heart, b_heart = uniform(rng, 70.0, 85.0), uniform(rng, 55.0, 65.0)
    items.append(Blob(ellipsoid_keys(zc, hz, t8.x_mm - 28.0, y_heart, a_heart, b_heart, -0.6),
                      [Layer(0.0, hu["myocardium"]), Layer(10.0, hu["heart_blood"], 0.0, 3.0)], inside_cavity=True))
    # interventricular septum: a wall between the right (anterior) and left (posterior) ventricles
    items.append(Bar((t8.x_mm - 28.0 - 0.5 * a_heart, y_heart - 0.55 * b_heart, zc - 0.2 * hz),
                     (t8.x_mm - 28.0 + 0.3 * a_heart, y_heart + 0.5 * b_heart, zc - 0.2 * hz), 4.0, 4.0, 0.55 * hz,
                     [Layer(0.0, hu["myocardium"], 0.0)]))
    # trachea, carina, main bronchi
    t5 = patient.vertebra("T5")
    z_carina = t5.top_mm + uniform(rng, -12.0, 8.0)
    top = patient.vertebrae[0].top_mm + 10.0
    pts = []
    for v in patient.vertebrae:
        if v.mid_mm < z_carina:
            break
        pts.append((v.x_mm, v.y_mm + v.half_depth_mm + (16.0 if v.region == "C" else 20.0) + 9.0, v.mid_mm))
    pts = [(pts[0][0], pts[0][1], top)] + pts + [(t5.x_mm, t5.y_mm + t5.half_depth_mm + 30.0, z_carina)]
    items.append(Blob(tube_keys(pts, 9.0, 8.0), [Layer(0.0, hu["muscle"] - 10.0), Layer(2.0, AIR_HU)]))
    for side in (1, -1):
        end = (t5.x_mm + side * uniform(rng, 40.0, 50.0), t5.y_mm + t5.half_depth_mm + 20.0, z_carina - uniform(rng, 20.0, 35.0))
        items.append(Bar((t5.x_mm, t5.y_mm + t5.half_depth_mm + 30.0, z_carina), end, 7.0, 5.5, 6.0,
                         [Layer(0.0, hu["muscle"] - 10.0, 0.0), Layer(1.8, AIR_HU, 0.0)]))
    # oesophagus, from the neck to the stomach
    pts = [(v.x_mm - 6.0 - (8.0 if v.region != "C" and v.index > 6 else 0.0), v.y_mm + v.half_depth_mm + 7.0, v.mid_mm) for v in patient.vertebrae
           if v.mid_mm > patient.thoracic[-1].mid_mm]
    pts = [(pts[0][0], pts[0][1], top)] + pts
    wall = [Layer(0.0, hu["muscle"] - 5.0)] + ([Layer(5.0, AIR_HU)] if rng.random() < 0.4 else [])
    items.append(Blob(tube_keys(pts, 8.0, 6.0), wall))
    return items, ChestLandmarks(zc, hz, y_heart, z_carina)


def neck(patient: Patient) -> list[Item]:
    """Thyroid lobes either side of the trachea, carotid arteries and jugular veins."""
    rng, hu = patient.rng, patient.hu
    c6, t1 = patient.vertebra("C6"), patient.vertebra("T1")
    y_trachea = c6.y_mm + c6.half_depth_mm + 25.0
    items: list[Item] = []
    for side in (1, -1):
        thyroid_hu = uniform(rng, 80.0, 120.0) + (40.0 if patient.params["contrast"] != "none" else 0.0)
        keys = ellipsoid_keys((c6.top_mm + t1.mid_mm) / 2, (c6.top_mm - t1.mid_mm) / 2, side * 19.0, y_trachea - 2.0, 9.0, 15.0, side * 0.4)
        items.append(Blob(keys, [Layer(0.0, thyroid_hu)]))
        top = patient.vertebrae[0].top_mm + 10.0
        for dx, dy, r, value in ((27.0, -6.0, 4.5, hu["artery"]), (38.0, -2.0, 6.5, hu["vein"])):
            items.append(Blob(tube_keys([(side * dx, y_trachea + dy, top), (side * dx, y_trachea + dy - 5.0, t1.mid_mm)], r), [Layer(0.0, value)]))
    return items
