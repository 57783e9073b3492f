"""The whole patient as an ordered list of paintable items: body wall, arms, organs, vessels, muscles, bones.

The order is the painting order (later items cover earlier ones) and also the order in which the
builders draw from the patient's random generator, so it fixes the phantom a seed gives.
"""

from __future__ import annotations

import numpy as np

from .abdomen import bladder_and_rectum, bowel, upper_abdomen
from .body import BodyWall
from .chest import chest_organs, neck
from .patient import Patient, uniform
from .pelvis import pelvis, sacrum
from .retroperitoneum import back_and_flank_muscles, kidneys_and_crura
from .ribcage import chest_wall_bones, ribs
from .shapes import Blob, EllipseKey, Item, Layer
from .spine import spine
from .torso import Diaphragm
from .vertebra_templates import VertebraTemplates
from .vessels import great_vessels


def _arms(patient: Patient, pose_rng: np.random.Generator, z_lo: float) -> list[Item]:
    """Both arms down beside the body from the shoulders to below the scan (``z_lo``, mm), elbows near L1."""
    hu, torso = patient.hu, patient.torso
    top = patient.vertebra("T1").mid_mm
    elbow = patient.lumbar[0].mid_mm + uniform(pose_rng, -20.0, 20.0)
    items: list[Item] = []
    for side in (1, -1):
        gap = uniform(pose_rng, 5.0, 30.0)
        outline_keys, bone_keys = [], []
        for z in np.linspace(min(z_lo, top) - 10, top, 6):
            skin_width = float(torso.outline(z).half_width_mm)
            r = 42.0 if z > elbow else 36.0
            x = side * (skin_width + gap + r)
            outline_keys.append(EllipseKey(float(z), x, 0.0, r, r * 1.1, 0.0))
            bone_r = 11.0 if z > elbow else 8.0
            bone_keys.append(EllipseKey(float(z), x + side * 4, -4.0, bone_r, bone_r, 0.0))
        items.append(Blob(outline_keys, [Layer(0.0, hu["skin"], 0.0), Layer(2.0, hu["fat"], 0.0), Layer(8.0, hu["muscle"], 0.0)]))
        items.append(Blob(bone_keys, [Layer(0.0, hu["cortex"], 0.0), Layer(3.0, hu["marrow_fat"], 0.0)]))
    return items


def build_items(patient: Patient, z_lo: float, pose_rng: np.random.Generator, arms_down: bool,
                templates: VertebraTemplates | None = None) -> tuple[list[Item], Diaphragm]:
    """All anatomy items in painting order for a scan whose lowest slab reaches ``z_lo`` (torso mm), and the diaphragm.

    ``pose_rng`` draws the arms, so that positioning never changes the anatomy drawn from the seed;
    ``templates`` give the levels they hold real shapes (:mod:`.vertebra_templates`).
    """
    items: list[Item] = [BodyWall(patient.torso, patient.hu)]
    if arms_down:
        items += _arms(patient, pose_rng, z_lo)
    abdominal, diaphragm = upper_abdomen(patient)
    items += abdominal
    items += bowel(patient)
    items += bladder_and_rectum(patient)
    chest, landmarks = chest_organs(patient, diaphragm)
    items += chest
    items += neck(patient)
    items += great_vessels(patient, diaphragm, landmarks)
    items += kidneys_and_crura(patient)
    items += back_and_flank_muscles(patient)
    items += spine(patient, templates)
    items += ribs(patient)
    items += chest_wall_bones(patient, arms_down)
    items += sacrum(patient)
    items += pelvis(patient)
    return items, diaphragm
