"""Rib cage and shoulder girdle: ribs with costal cartilage, sternum, clavicles, scapulae (and humeral heads).

Ribs sit on the thoracic (rib-bearing) vertebrae only and slope down anteriorly; the last two
pairs are short and floating. Their count is what defines the lumbar levels.
"""

from __future__ import annotations

import math

import numpy as np

from .patient import Patient, uniform
from .shapes import Bar, Blob, Chain, EllipseKey, Item, Layer, Polyline, PolylineKey, ellipsoid_keys

#: Angle (degrees from the posterior midline) where each rib pair ends, and how far it drops (mm), for 12 pairs.
_RIB_END_DEG = (150, 160, 162, 162, 160, 158, 155, 140, 130, 120, 100, 70)
_RIB_DROP_MM = (30, 50, 65, 80, 95, 105, 110, 110, 105, 100, 90, 80)


def _rib_shape(n_thoracic: int) -> tuple[list[int], list[int]]:
    """End angles (degrees) and drops (mm) for ``n_thoracic`` rib pairs (11, 12 or 13)."""
    ends, drops = list(_RIB_END_DEG), list(_RIB_DROP_MM)
    if n_thoracic == 11:
        return ends[:10] + [70], drops[:11]
    if n_thoracic == 13:
        return ends[:11] + [85, 55], drops + [75]
    return ends, drops


def ribs(patient: Patient) -> list[Item]:
    """Every rib pair from its vertebra round the cavity wall, and costal cartilage to the sternum or costal margin."""
    rng, hu, torso = patient.rng, patient.hu, patient.torso
    n_t = len(patient.thoracic)
    ends, drops = _rib_shape(n_t)
    patient.params["rib_bearing"] = [v.name for v in patient.thoracic]
    rib_layers = [Layer(0.0, hu["cortex"] * 0.95, 0.0), Layer(1.6, hu["cancellous"] + 40.0, 20.0)]
    cartilage = [Layer(0.0, hu["cartilage"], 15.0)]
    items: list[Item] = []
    for n, v in enumerate(patient.thoracic):
        phi_end = math.radians(ends[n] + uniform(rng, -5.0, 5.0))
        drop = drops[n] * patient.params["scale_z"]
        rcx, rcy = patient.canal_radii(v)
        yc = v.y_mm - v.half_depth_mm - rcy + 1.5
        hh = 8.0 if n == 0 else 6.5
        z0 = v.top_mm - 0.15 * v.height_mm
        for s in (1, -1):
            pts = [(v.x_mm + s * v.half_width_mm * 0.8, v.y_mm - v.half_depth_mm * 0.5, z0)]
            tp = patient.transverse_process_length(v)
            pts.append((v.x_mm + s * (rcx + 3.5 + tp * 0.8), yc - tp * 0.6, z0 - 2.0))
            phi_start = math.radians(32.0)
            steps = max(2, int((phi_end - phi_start) / math.radians(14.0)) + 1)
            for phi in np.linspace(phi_start, phi_end, steps):
                frac = (phi - phi_start) / (math.pi - phi_start)
                z = z0 - 3.0 - drop * frac ** 1.15
                pts.append(patient.cage_point(s, float(phi), z, 4.0))
            items.append(Chain([Bar(p0, p1, 4.0 if p0[1] < v.y_mm else 3.2, 4.0 if p1[1] < v.y_mm else 3.2, hh, rib_layers)
                                for p0, p1 in zip(pts[:-1], pts[1:])]))
            # costal cartilage to the sternum (true ribs) or the costal margin (false ribs)
            end = pts[-1]
            if n < 7:
                zc = end[2] + 4.0
                target = (s * 12.0, float(torso.section(zc).cavity_front_mm) + 6.0, zc)
            elif n < 10 and n < n_t - 2:
                zc = end[2] + 18.0
                target = patient.cage_point(s, math.radians(ends[n] + 25.0), zc, 2.0)
            else:
                continue
            items.append(Bar(end, target, 3.5, 3.5, 6.0, cartilage))
    return items


def chest_wall_bones(patient: Patient, arms_down: bool) -> list[Item]:
    """Sternum (manubrium, body, xiphoid), clavicles, scapulae; humeral heads when the arms are down."""
    hu, torso, t = patient.hu, patient.torso, patient.by_name
    bone = patient.bone_layers()
    items: list[Item] = []
    keys = []
    for name, frac, a, b in (("T2", 0.0, 24.0, 8.0), ("T4", 0.5, 17.0, 7.0), ("T7", 0.5, 15.0, 6.5), ("T9", 0.5, 12.0, 6.0)):
        v = t[name]
        z = v.bottom_mm + frac * v.height_mm
        keys.append(EllipseKey(z, 0.0, float(torso.section(z).cavity_front_mm) + 7.0, a, b, 0.0))
    z_xiphoid = t["T10"].mid_mm
    keys.append(EllipseKey(z_xiphoid, 0.0, float(torso.section(z_xiphoid).cavity_front_mm) + 6.0, 6.0, 3.5, 0.0))
    items.append(Blob(keys, [Layer(0.0, hu["cortex"] * 0.8), Layer(1.6, hu["cancellous"], 30.0, 1.0)]))
    t1 = t["T1"]
    z_sc = t1.bottom_mm
    for s in (1, -1):  # clavicles
        skin_width = float(torso.outline(t1.mid_mm).half_width_mm)
        start = (s * 18.0, float(torso.section(z_sc).cavity_front_mm) + 14.0, z_sc)
        items.append(Bar(start, (s * (skin_width - 25.0), t1.y_mm + 5.0, t1.top_mm + 12.0), 7.0, 6.0, 7.0, bone))
    for s in (1, -1):  # scapulae behind the ribs
        keys = []
        for name, medial, lateral, hw in (("T2", 30.0, 95.0, 9.0), ("T4", 30.0, 80.0, 3.5), ("T6", 33.0, 68.0, 3.0), ("T8", 38.0, 48.0, 3.0)):
            v = t[name]
            pts = [patient.cage_point(s, math.radians(phi), v.mid_mm, 13.0)[:2] for phi in (medial, (medial + lateral) / 2, lateral)]
            keys.append(PolylineKey(v.mid_mm, pts, hw))
        keys.append(PolylineKey(t["T2"].top_mm + 10.0, keys[0].points_xy_mm, 5.0))
        items.append(Polyline(keys, bone))
        if arms_down:
            t2_z = t["T2"].mid_mm
            skin_width = float(torso.outline(t2_z).half_width_mm)
            keys_head = ellipsoid_keys(t2_z, 24.0, s * (skin_width - 22.0), -0.1 * float(torso.section(t2_z).cavity_back_mm), 23.0, 23.0)
            items.append(Blob(keys_head, [Layer(0.0, hu["cortex"] * 0.8), Layer(2.0, hu["cancellous"], 30.0, 1.5)]))
    return items
