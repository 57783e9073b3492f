"""Great vessels: aorta (ascending, arch, descending, bifurcation near L4), pulmonary arteries, SVC, IVC, iliac vessels."""

from __future__ import annotations

from .chest import ChestLandmarks
from .patient import Patient, uniform
from .shapes import Bar, Blob, Item, Layer, tube_keys
from .torso import Diaphragm


def great_vessels(patient: Patient, diaphragm: Diaphragm, chest: ChestLandmarks) -> list[Item]:
    """The arterial and venous trunks from the heart down to the hips, in painting order (HU by contrast phase)."""
    rng, hu, torso = patient.rng, patient.hu, patient.torso
    artery, vein = [Layer(0.0, hu["artery"])], [Layer(0.0, hu["vein"])]
    t4 = patient.vertebra("T4")
    z_heart, hz_heart, y_heart = chest.heart_z_mm, chest.heart_half_height_mm, chest.heart_y_mm
    # descending + abdominal aorta, bifurcating near L4
    l4 = patient.lumbar[3] if len(patient.lumbar) >= 5 else patient.lumbar[-1]
    z_bifurcation = l4.mid_mm + uniform(rng, -30.0, 30.0)  # L3/L4 disc to the top of L5
    patient.params["aortic_bifurcation_mm"] = round(z_bifurcation, 1)
    pts = []
    z_arch = t4.top_mm + uniform(rng, 0.0, 10.0)
    for v in patient.vertebrae:
        if v.mid_mm > z_arch or v.mid_mm < z_bifurcation:
            continue
        if v.region == "T" and v.index < len(patient.thoracic) - 1:
            pts.append((v.x_mm - v.half_width_mm - 6.0, v.y_mm + 0.3 * v.half_depth_mm, v.mid_mm))
        else:
            pts.append((v.x_mm - 8.0, v.y_mm + v.half_depth_mm + 13.0, v.mid_mm))
    arch_end = (t4.x_mm - t4.half_width_mm - 8.0, t4.y_mm + 0.3 * t4.half_depth_mm)
    pts = [(*arch_end, z_arch)] + pts + [(pts[-1][0], pts[-1][1], z_bifurcation)]
    items: list[Item] = [Blob(tube_keys(pts, 12.0), artery)]
    # ascending aorta and arch
    asc_x, asc_y = t4.x_mm + 14.0, y_heart + 10.0
    items.append(Blob(tube_keys([(asc_x, asc_y, z_heart + 0.3 * hz_heart), (asc_x - 3.0, asc_y - 10.0, z_arch)], 15.0), artery))
    items.append(Bar((asc_x - 3.0, asc_y - 10.0, z_arch), (*arch_end, z_arch - 4.0), 13.0, 12.0, 12.0, artery))
    # pulmonary trunk and arteries
    z_pulmonary = chest.carina_z_mm - uniform(rng, 8.0, 18.0)
    trunk_x, trunk_y = t4.x_mm - 18.0, y_heart + 5.0
    pulmonary = [Layer(0.0, hu["heart_blood"])]
    items.append(Blob(tube_keys([(trunk_x, trunk_y + 10.0, z_heart + 0.2 * hz_heart), (trunk_x, trunk_y, z_pulmonary)], 13.0), pulmonary))
    for side in (1, -1):
        end = (t4.x_mm + side * 45.0, t4.y_mm + t4.half_depth_mm + 22.0, z_pulmonary - 6.0)
        items.append(Bar((trunk_x, trunk_y, z_pulmonary), end, 9.0, 7.0, 8.0, pulmonary))
    # SVC and IVC
    t2 = patient.vertebra("T2")
    items.append(Blob(tube_keys([(t2.x_mm + 30.0, asc_y + 5.0, t2.bottom_mm), (t2.x_mm + 28.0, asc_y, z_heart + 0.3 * hz_heart)], 9.0), vein))
    last_l = patient.lumbar[-1]
    pts = [(v.x_mm + 24.0, v.y_mm + v.half_depth_mm + 12.0, v.mid_mm) for v in patient.vertebrae
           if last_l.mid_mm <= v.mid_mm <= diaphragm.right_dome_z_mm - 20]
    if pts:
        pts.append((pts[-1][0], pts[-1][1] + 10.0, diaphragm.right_dome_z_mm - 10.0))
        ivc_hu = hu["vein"] if patient.params["contrast"] != "arterial" else hu["vein"] - 30.0
        items.append(Blob(tube_keys(pts, 12.0, 9.0), [Layer(0.0, ivc_hu)]))
    # iliac arteries and veins: diverge below the bifurcation toward the hips
    x_fh, y_fh, z_fh = patient.femoral_head_x_mm, patient.femoral_head_y_mm, patient.femoral_heads_mm
    for side in (1, -1):
        mid_z = patient.sacrum_top_mm - 20.0
        a_mid = float(torso.section(mid_z).cavity_half_width_mm)
        items.append(Blob(tube_keys([(side * 0.55 * a_mid - 20.0 * side, y_fh + 15.0, mid_z),
                                     (side * 0.3 * (x_fh + 10.0), pts[-1][1] if pts else 0.0, z_bifurcation),
                                     (side * (x_fh - 5.0), y_fh + 38.0, z_fh - 10.0)], 6.0), artery))
        items.append(Blob(tube_keys([(side * (x_fh - 15.0), y_fh + 30.0, z_fh - 10.0), (side * 0.5 * a_mid - 30.0 * side, y_fh + 5.0, mid_z),
                                     (side * 20.0, float(torso.spine_y(last_l.mid_mm)) + last_l.half_depth_mm + 10.0, last_l.mid_mm)], 8.0), vein))
    return items
