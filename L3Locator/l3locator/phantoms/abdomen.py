"""Abdomen and pelvic viscera: diaphragm, liver (with its vessels), gallbladder, spleen, stomach,
pancreas, colon, small bowel loops (collapsed, fluid- or gas-filled), bladder and rectum.

Organs are laid out in torso mm relative to the body cavity and clipped to it; those under the
diaphragm are cut by its domes.
"""

from __future__ import annotations

import math

from .canvas import AIR_HU
from .patient import Patient, uniform
from .shapes import Bar, Blob, EllipseKey, GasLevel, Item, Layer, ellipsoid_keys, tube_keys
from .torso import Diaphragm


def _draw_diaphragm(patient: Patient) -> Diaphragm:
    """Domes near the third-last thoracic vertebra (right higher), recesses around the last one."""
    rng, ref_z = patient.rng, patient.thoracic[-1].mid_mm
    ref = patient.torso.section(ref_z)
    half_width, front, back = float(ref.cavity_half_width_mm), float(ref.cavity_front_mm), float(ref.cavity_back_mm)
    right = patient.thoracic[-3].top_mm + uniform(rng, -5.0, 20.0)
    diaphragm = Diaphragm(right_dome_z_mm=right, left_dome_z_mm=right - uniform(rng, 5.0, 20.0), recess_z_mm=ref_z + uniform(rng, -15.0, 10.0),
                          dome_x_mm=0.45 * half_width, dome_y_mm=uniform(rng, -5.0, 15.0), width_scale_mm=half_width, front_scale_mm=front,
                          back_scale_mm=back + 20.0, lateral_drop_mm=uniform(rng, 35.0, 55.0), front_drop_mm=uniform(rng, 25.0, 45.0))
    patient.params["diaphragm_mm"] = {"right": round(diaphragm.right_dome_z_mm, 1), "left": round(diaphragm.left_dome_z_mm, 1),
                                      "recess": round(diaphragm.recess_z_mm, 1)}
    return diaphragm


def upper_abdomen(patient: Patient) -> tuple[list[Item], Diaphragm]:
    """The diaphragm and the upper abdominal organs, in painting order."""
    rng, hu, torso = patient.rng, patient.hu, patient.torso
    last_t = patient.thoracic[-1]
    l1, l2 = patient.lumbar[0], patient.lumbar[1]
    ref = torso.section(last_t.mid_mm)
    a_ref, front_ref = float(ref.cavity_half_width_mm), float(ref.cavity_front_mm)
    y_spine = float(torso.spine_y(last_t.mid_mm))
    diaphragm = _draw_diaphragm(patient)
    liver_tip = l2.top_mm + uniform(rng, -80.0, 15.0)  # from L1 down to L4 (a Riedel's lobe reaches the crest)
    patient.params["liver_tip_mm"] = round(liver_tip, 1)
    z_dome = diaphragm.right_dome_z_mm + 10.0

    def cavity_key(z: float, fx: float, fy: float, fa: float, fb: float, angle: float = 0.0) -> EllipseKey:
        """An ellipse at height ``z`` with centre and semi-axes as fractions of the cavity's half-width / mean half-depth."""
        s = torso.section(z)
        a = float(s.cavity_half_width_mm)
        mean_depth = float((s.cavity_front_mm + s.cavity_back_mm) / 2)
        return EllipseKey(z, fx * a, fy * mean_depth, fa * a, fb * mean_depth, angle)

    items: list[Item] = []
    liver = [Layer(0.0, hu["liver"], 5.0)]
    right_lobe = [cavity_key(z_dome, 0.45, 0.05, 0.6, 0.8), cavity_key(last_t.mid_mm, 0.42, 0.02, 0.6, 0.78),
                  cavity_key(l1.mid_mm, 0.55, 0.0, 0.42, 0.55, 0.3), cavity_key(liver_tip, 0.68, 0.15, 0.12, 0.18, 0.5)]
    items.append(Blob(right_lobe, liver, inside_cavity=True, below_diaphragm=True))
    left_lobe = [cavity_key(z_dome, -0.05, 0.45, 0.55, 0.35, 0.15), cavity_key(last_t.top_mm, -0.1, 0.45, 0.5, 0.3, 0.2),
                 cavity_key(last_t.bottom_mm - 5, 0.05, 0.5, 0.2, 0.15, 0.2)]
    items.append(Blob(left_lobe, liver, inside_cavity=True, below_diaphragm=True))
    # intrahepatic vessels (darker without contrast, brighter with)
    vessel = [Layer(0.0, hu["vein"] if patient.params["contrast"] != "none" else hu["liver"] - 22.0, 0.0)]
    confluence = (0.15 * a_ref, y_spine + 40.0, diaphragm.right_dome_z_mm - 28.0)
    for end_x, end_y in ((0.62, 0.1), (0.45, 0.55), (-0.1, 0.6)):  # hepatic veins radiating from the IVC
        end = (end_x * a_ref, end_y * front_ref, confluence[2] - uniform(rng, 5.0, 20.0))
        items.append(Bar(confluence, end, 5.5, 2.5, 5.0, vessel))
    porta = (0.05 * a_ref, y_spine + 45.0, l1.top_mm + uniform(rng, 5.0, 20.0))
    for end_x, end_y, dz in ((0.5, 0.05, 15.0), (0.35, 0.45, 25.0), (0.15, 0.55, 10.0)):  # portal branches
        items.append(Bar(porta, (end_x * a_ref, end_y * front_ref, porta[2] + dz), 6.0, 2.5, 5.0, vessel))
    if rng.random() < 0.6:  # gallbladder
        keys = ellipsoid_keys(l1.top_mm - 5.0, uniform(rng, 20.0, 35.0), 0.25 * a_ref, 0.45 * front_ref, 16.0, 13.0, 0.5)
        items.append(Blob(keys, [Layer(0.0, hu["fluid"] + 5.0)], inside_cavity=True, below_diaphragm=True))
    # spleen
    zc = (patient.thoracic[-2].mid_mm + l1.top_mm) / 2 + uniform(rng, -10.0, 10.0)
    keys = ellipsoid_keys(zc, uniform(rng, 38.0, 55.0), -(a_ref - 38.0), y_spine + 8.0, uniform(rng, 38.0, 50.0), uniform(rng, 16.0, 22.0), -0.9)
    items.append(Blob(keys, [Layer(0.0, hu["spleen"], 4.0)], inside_cavity=True, below_diaphragm=True))
    # stomach with an air-fluid level
    zc = last_t.bottom_mm + uniform(rng, -10.0, 20.0)
    gas = uniform(rng, 0.35, 0.9)
    keys = ellipsoid_keys(zc, uniform(rng, 50.0, 70.0), -0.42 * a_ref, 0.35 * front_ref, uniform(rng, 38.0, 55.0), uniform(rng, 28.0, 40.0), 0.5,
                          shift=(25.0, -10.0))
    items.append(Blob(keys, [Layer(0.0, hu["bowel_wall"]), Layer(4.0, hu["bowel_content"], 10.0, 2.0)], inside_cavity=True, below_diaphragm=True,
                      gas=GasLevel(gas, AIR_HU)))
    # pancreas
    y_pancreas = float(torso.spine_y(l1.mid_mm)) + l1.half_depth_mm + 38.0
    keys = ellipsoid_keys(l1.mid_mm - 8.0, 18.0, -0.1 * a_ref, y_pancreas, 62.0, 11.0, 0.3)
    items.append(Blob(keys, [Layer(0.0, hu["pancreas"], 4.0)], inside_cavity=True))
    return items, diaphragm


def bowel(patient: Patient) -> list[Item]:
    """Ascending, transverse and descending colon, then small bowel loops cut at any angle."""
    rng, hu, torso = patient.rng, patient.hu, patient.torso
    l1 = patient.lumbar[0]
    z_top = l1.mid_mm + uniform(rng, -10.0, 10.0)
    z_bottom = patient.femoral_heads_mm + 25.0
    content = hu["bowel_content"]
    items: list[Item] = []
    # colon: ascending (right), transverse (anterior, sagging), descending (left)
    flexure_right = l1.bottom_mm - uniform(rng, 0.0, 25.0)
    flexure_left = l1.top_mm + uniform(rng, -10.0, 15.0)
    a_mid = float(torso.section(patient.lumbar[2].mid_mm).cavity_half_width_mm)
    y_spine = float(torso.spine_y(patient.lumbar[2].mid_mm))
    stool = Layer(2.5, -110.0, 110.0)
    colon = [Layer(0.0, hu["bowel_wall"]), stool]
    r_colon = uniform(rng, 18.0, 26.0)
    ascending = tube_keys([(0.68 * a_mid, y_spine + 25.0, patient.iliac_crest_mm - 25.0), (0.66 * a_mid, y_spine + 20.0, flexure_right)],
                          r_colon, r_colon * 0.9)
    items.append(Blob(ascending, colon, gas=GasLevel(uniform(rng, -0.3, 0.6), AIR_HU), inside_cavity=True))
    descending = tube_keys([(-0.72 * a_mid, y_spine + 5.0, patient.iliac_crest_mm - 10.0), (-0.74 * a_mid, y_spine + 5.0, flexure_left)],
                           r_colon * 0.7, r_colon * 0.65)
    items.append(Blob(descending, colon, gas=GasLevel(uniform(rng, -0.3, 0.8), AIR_HU), inside_cavity=True))
    z_transverse = patient.lumbar[1].mid_mm + uniform(rng, -30.0, 15.0)
    front = float(torso.section(z_transverse).cavity_front_mm)
    pts = [(0.66 * a_mid, y_spine + 30.0, flexure_right + 10), (0.3 * a_mid, 0.55 * front, z_transverse),
           (-0.3 * a_mid, 0.55 * front, z_transverse + 5.0), (-0.72 * a_mid, y_spine + 10.0, flexure_left)]
    r_transverse = r_colon * 0.8
    for p0, p1 in zip(pts[:-1], pts[1:]):
        items.append(Bar(p0, p1, r_transverse, r_transverse, r_transverse * 0.9, [Layer(0.0, hu["bowel_wall"], 0.0), stool]))
    # small bowel loops: collapsed (soft tissue), fluid-filled, gas-containing; cut at any angle
    n = int(uniform(rng, 60.0, 95.0) * (z_top - z_bottom) / 200.0)
    collapsed = hu["bowel_wall"] - 5.0
    for _ in range(max(n, 0)):
        z = uniform(rng, z_bottom, z_top)
        s = torso.section(z)
        half_width, front = float(s.cavity_half_width_mm), float(s.cavity_front_mm)
        y_spine_front = float(torso.spine_y(z)) + 25.0
        y = uniform(rng, y_spine_front, 0.85 * front)
        half = half_width * 0.72 * math.sqrt(max(1.0 - (y / front) ** 2, 0.1))
        x = uniform(rng, -half, half)
        ra = uniform(rng, 6.0, 16.0)
        rb = ra * uniform(rng, 0.45, 1.0)
        kind = rng.random()
        if kind < 0.4:
            layers, gas = [Layer(0.0, collapsed, 5.0)], None
        elif kind < 0.55:  # colon segment with stool
            layers, gas = [Layer(0.0, hu["bowel_wall"]), stool], GasLevel(uniform(rng, 0.0, 1.0), AIR_HU)
        else:
            layers = [Layer(0.0, hu["bowel_wall"]), Layer(2.2, content, 6.0)]
            gas = GasLevel(uniform(rng, -0.9, 0.6), AIR_HU) if kind > 0.85 else None
        keys = ellipsoid_keys(z, uniform(rng, 8.0, 35.0), x, y, ra, rb, uniform(rng, 0, math.pi),
                              shift=(uniform(rng, -25, 25), uniform(rng, -20, 20)), n=5)
        items.append(Blob(keys, layers, gas=gas, inside_cavity=True))
    return items


def bladder_and_rectum(patient: Patient) -> list[Item]:
    """The bladder (usually filled) above the femoral heads and the rectum along the sacrum."""
    rng, hu = patient.rng, patient.hu
    z_fh, z_s1, y_fh = patient.femoral_heads_mm, patient.sacrum_top_mm, patient.femoral_head_y_mm
    items: list[Item] = []
    if rng.random() < 0.85:
        hz = uniform(rng, 20.0, 45.0)
        keys = ellipsoid_keys(z_fh - 10.0 + hz * 0.6, hz, 0.0, y_fh + 45.0, uniform(rng, 30.0, 50.0), uniform(rng, 22.0, 35.0))
        items.append(Blob(keys, [Layer(0.0, hu["bowel_wall"]), Layer(3.0, hu["fluid"])], inside_cavity=True))
    rectum = tube_keys([(0.0, patient.sacrum_front_y(z_s1 - 70.0) + 18.0, z_s1 - 70.0),
                        (0.0, patient.sacrum_front_y(z_fh - 40.0) + 20.0, z_fh - 40.0)], 17.0, 14.0)
    items.append(Blob(rectum, [Layer(0.0, hu["bowel_wall"]), Layer(3.0, -250.0, 220.0)], gas=GasLevel(0.3, AIR_HU)))
    return items
