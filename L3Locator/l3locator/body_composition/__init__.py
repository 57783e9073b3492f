"""Body composition on an axial CT slice (at L3): skeletal muscle, IMAT, VAT and SAT.

    from l3locator.body_composition import measure_body_composition
    composition = measure_body_composition(volume, result.l3_slice_index, height_m=1.72)
    composition.areas_cm2["muscle"], composition.smi_cm2_per_m2, composition.labels

Method
------
A threshold method with geometric compartments, numpy and scipy only (no network): a pixel is a
tissue candidate by the standard HU ranges (:class:`HURanges`: muscle -29..150, VAT -150..-50,
SAT and IMAT -190..-30 HU) and its compartment decides which tissue it is: SAT outside the
abdominal wall's muscle, VAT inside it, IMAT within the muscles' outline, muscle only in the
wall, the back muscles and the psoas; bone (above 150 HU, marrow and spinal canal filled) and
skin are none of them. The steps are in :mod:`~l3locator.body_composition.compartments`. Areas
come from the pixel spacing (cm^2), SMI = muscle area / height^2 when the height is known (the
DICOM tag Patient's Size or an explicit height), mean HU from the original pixels.

What it gets wrong
------------------
A threshold method needs review, slice by slice; the label map is meant to be edited (3D
Slicer's Segment Editor) and re-measured with :func:`measure_labels`. Known errors:

* **Organs at muscle HU against the muscles**: a kidney lying on the quadratus lumborum or psoas,
  bowel loops or the liver against the abdominal wall, the duodenum or vena cava against the
  psoas. Only their outer few mm are taken as muscle when they touch the wall, more when they
  touch a back muscle behind the vertebral body's centre or the psoas.
* **Bowel content and wall**: stool and bowel content in the fat range count as VAT; bowel
  wall, vessels and lymph nodes in the VAT are not fat (right) but also not muscle.
* **Noise and partial volume**: noisy fat falls out of the VAT range (-150..-50 HU) when
  visceral fat is near -70 HU; a thin wall blurred with fat falls below -29 HU; fat planes
  between muscles become IMAT only when narrower than 5 mm.
* **Anatomy it does not expect**: a wide gap in the abdominal wall (hernia, diastasis; a
  warning says when the wall did not hold the subcutaneous fat back), arms resting against the
  trunk (counted as trunk), a slice without a vertebra (psoas not measured), a body cut by the
  field of view (warned; areas too small).

Modules
-------
``tissues`` (names, labels, colours, :class:`HURanges`), ``masks`` (morphology in mm, body,
bone), ``spine`` (the vertebra and the frame it gives), ``compartments`` (:func:`segment_slice`),
``measurement`` (:class:`BodyComposition`, :func:`measure_labels`, :func:`measure_body_composition`).
"""

from __future__ import annotations

from .compartments import segment_slice
from .measurement import METHOD, BodyComposition, axial_slice, check_height_m, measure_body_composition, measure_labels, slice_label_volume
from .tissues import TISSUE_COLOURS_RGB, TISSUE_LABELS, TISSUE_TITLES, TISSUES, HURanges

__all__ = [
    "METHOD", "TISSUES", "TISSUE_COLOURS_RGB", "TISSUE_LABELS", "TISSUE_TITLES", "BodyComposition", "HURanges", "axial_slice",
    "check_height_m", "measure_body_composition", "measure_labels", "segment_slice", "slice_label_volume",
]
