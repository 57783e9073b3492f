"""The spine: vertebral bodies and discs, spinal canal and cord, and each vertebra's posterior elements.

Bodies and posterior elements carry the vertebra's VerSe label (discs do not); the canal clears
labels under it. Transverse process length depends on the level (lumbar: L1 short, L3 longest),
one of the cues that tells L3 from its neighbours.
"""

from __future__ import annotations

import math

from .patient import Patient
from .shapes import Bar, Blob, EllipseKey, Item, Layer, Tilt
from .vertebra_templates import TemplateVertebra, VertebraTemplates
from .vertebrae import Vertebra


def spine(patient: Patient, templates: VertebraTemplates | None = None) -> list[Item]:
    """Bodies, discs, canal, cord, then the posterior elements of every vertebra, in painting order.

    Levels that ``templates`` hold are painted whole from their real shape after the canal (their
    discs reach 1.5 mm into the neighbouring bodies, which cover them); the others analytically.
    """
    hu, verts = patient.hu, patient.vertebrae
    templated = {v.name: t for v in verts if templates is not None and (t := templates.for_vertebra(v.name)) is not None}
    items: list[Item] = []
    for n, v in enumerate(verts):
        tilt = Tilt(v.endplate_slope, v.y_mm)
        overlap = 1.5 if v.name in templated else 0.0
        if v.name not in templated:
            items.append(Blob([EllipseKey(v.bottom_mm, v.x_mm, v.y_mm, v.half_width_mm, v.half_depth_mm, 0.0),
                               EllipseKey(v.top_mm, v.x_mm, v.y_mm, v.half_width_mm, v.half_depth_mm, 0.0)],
                              [Layer(0.0, hu["cortex"]), Layer(1.5, hu["cancellous"], 35.0, 1.2)], label=v.label, vertebral_body=True, tilt=tilt))
        lower = verts[n + 1] if n + 1 < len(verts) else None
        if lower is not None:
            z_next, lx, ly, lw, ld = lower.top_mm, lower.x_mm, lower.y_mm, lower.half_width_mm, lower.half_depth_mm
        else:
            z_next, lx, ly, lw, ld = v.bottom_mm - v.disc_mm, v.x_mm, v.y_mm - 3.0, v.half_width_mm * 1.05, v.half_depth_mm
        disc = [EllipseKey(z_next - overlap, lx, ly, lw + 1.0, ld + 1.0, 0.0),
                EllipseKey(v.bottom_mm + overlap, v.x_mm, v.y_mm, v.half_width_mm + 1.0, v.half_depth_mm + 1.0, 0.0)]
        items.append(Blob(disc, [Layer(0.0, hu["disc"] + 10.0), Layer(6.0, hu["disc"] - 10.0)], tilt=tilt))
    # spinal canal (CSF) with the cord down to L1
    canal, cord = [], []
    for v in verts:
        rcx, rcy = patient.canal_radii(v)
        yc = v.y_mm - v.half_depth_mm - rcy + 1.5
        canal.append(EllipseKey(v.mid_mm, v.x_mm, yc, rcx, rcy, 0.0))
        if v.region != "L" or v.index == 1:
            cord.append(EllipseKey(v.mid_mm, v.x_mm, yc, rcx * 0.55, rcy * 0.6, 0.0))
    canal.insert(0, canal[0]._replace(z_mm=verts[0].top_mm + 20.0))
    cord.insert(0, cord[0]._replace(z_mm=verts[0].top_mm + 20.0))
    canal.append(canal[-1]._replace(z_mm=patient.sacrum_top_mm))
    items.append(Blob(canal, [Layer(0.0, hu["csf"])], clears_labels=True))
    items.append(Blob(cord, [Layer(0.0, hu["cord"])]))
    for n, v in enumerate(verts):
        if v.name in templated:
            items.append(TemplateVertebra(v, templated[v.name], hu["cortex"], hu["cancellous"]))
        else:
            items += _posterior_elements(patient, v, verts[n - 1].disc_mm if n > 0 else 4.0)
    return items


def _posterior_elements(patient: Patient, v: Vertebra, disc_above_mm: float) -> list[Item]:
    """Pedicles, laminae, transverse processes, articular processes and the spinous process of ``v``.

    Records the transverse process length in ``params["transverse_process_mm"]`` (a lumbar one is a draw).
    """
    hu, label, slope = patient.hu, v.label, v.endplate_slope
    bone = [Layer(0.0, hu["cortex"], 0.0), Layer(1.5, hu["cancellous"], 30.0)]
    facet = [Layer(0.0, hu["cortex"]), Layer(1.5, hu["cancellous"], 30.0, 1.0)]
    h = v.height_mm
    rcx, rcy = patient.canal_radii(v)
    yc = v.y_mm - v.half_depth_mm - rcy + 1.5
    pedicle_hw, lamina_hw = {"C": (3.0, 3.0), "T": (4.0, 4.5), "L": (5.0, 6.0)}[v.region]

    def z_at(z: float, y: float) -> float:
        """Height ``z`` at the body's centre moved to torso ``y`` along the endplate slope."""
        return z + slope * (y - v.y_mm)

    z_pedicle = v.top_mm - 0.32 * h
    apex_y = yc - rcy - lamina_hw
    if v.region == "L":
        sp_len, sp_hw, sp_drop, sp_hh = 32.0, 5.0, 2.0, 0.38 * h
        last = v is patient.lumbar[-1]
        tp_hw, tp_back, tp_hh = ((7.0, 6.0) if last else (4.0, 2.3)), math.radians(20.0), 0.16 * h
    elif v.region == "T":
        steep = 1.0 - abs(v.index - 7) / 8.0
        sp_len, sp_hw, sp_drop, sp_hh = 36.0, 3.0, 12.0 + 18.0 * steep, 6.0
        tp_hw, tp_back, tp_hh = (5.0, 5.0), math.radians(38.0), 5.0
    else:
        sp_len = 32.0 if v.index == 7 else 20.0
        sp_hw, sp_drop, sp_hh = 3.0, 8.0, 5.0
        tp_hw, tp_back, tp_hh = (3.0, 3.0), math.radians(-20.0), 4.0
    tp_len = patient.transverse_process_length(v)
    patient.params.setdefault("transverse_process_mm", {})[v.name] = round(tp_len, 1)
    tilt = Tilt(slope, v.y_mm)
    items: list[Item] = []
    for s in (1, -1):
        xj = v.x_mm + s * (rcx + pedicle_hw * 0.6)
        back = v.y_mm - v.half_depth_mm
        items.append(Bar((xj, back + 3.0, z_at(z_pedicle, back)), (xj, yc - 1.0, z_at(z_pedicle, yc)), pedicle_hw, pedicle_hw, 0.2 * h, bone, label))
        z_lamina = v.mid_mm - 0.08 * h  # lamina to the midline
        lamina_end = (v.x_mm, apex_y, z_at(z_lamina - 0.1 * h, apex_y))
        items.append(Bar((xj, yc - 2.0, z_at(z_lamina, yc)), lamina_end, lamina_hw, lamina_hw, 0.4 * h, bone, label))
        x0, y0 = v.x_mm + s * (rcx + pedicle_hw), yc  # transverse process
        tip = (x0 + s * tp_len * math.cos(tp_back), y0 - tp_len * math.sin(tp_back))
        z_tp = v.top_mm - (0.3 if v.region == "L" else 0.4) * h
        items.append(Bar((x0, y0, z_at(z_tp, y0)), (tip[0], tip[1], z_at(z_tp, tip[1])), tp_hw[0], tp_hw[1], tp_hh, bone, label))
        # superior (up into the disc above) and inferior (down into the disc below) articular processes
        xs = v.x_mm + s * (rcx + pedicle_hw + 1.0)
        fa = 6.0 if v.region == "L" else 4.5
        items.append(Blob([EllipseKey(v.top_mm - 0.25 * h, xs, yc - 1.0, fa, fa + 2.0, 0.0),
                           EllipseKey(v.top_mm + 0.7 * disc_above_mm, xs, yc - 2.0, fa - 0.5, fa + 1.0, 0.0)], facet, label=label, tilt=tilt))
        xi = v.x_mm + s * (rcx + 0.5)
        items.append(Blob([EllipseKey(v.bottom_mm - 0.8 * v.disc_mm, xi, yc - rcy - 1.0, fa - 0.5, fa + 1.0, 0.0),
                           EllipseKey(v.bottom_mm + 0.3 * h, xi, yc - rcy, fa - 0.5, fa + 1.5, 0.0)], facet, label=label, tilt=tilt))
    z_sp = v.mid_mm - (0.2 if v.region == "L" else 0.25) * h  # spinous process
    tip_y = apex_y - sp_len
    items.append(Bar((v.x_mm, apex_y, z_at(z_sp, apex_y)), (v.x_mm, tip_y, z_at(z_sp - sp_drop, tip_y)), sp_hw, sp_hw * 0.8, sp_hh, bone, label))
    return items
