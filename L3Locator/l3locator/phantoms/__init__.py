"""Synthetic CT phantoms: an HU volume with a VerSe vertebra label map, drawn from a seed.

Phantoms prove the pipeline (training, tests, demos) where annotated real CT is scarce, so every
axial slice carries the level cues a radiologist uses to tell L3 from its neighbours:

* **Spine**: vertebral bodies (cortical shell, cancellous core, endplates) whose height and width
  grow caudally, discs, pedicles, laminae, spinous processes, articular processes, spinal canal
  with cord (ending at L1), and transverse processes whose length depends on the level (lumbar:
  L1 short, L3 longest, L5 stout). Endplates follow the sagittal curve (lordosis / kyphosis), so
  a slice can cut a body and a disc obliquely. Given a real vertebra mask (``vertebra_templates``,
  e.g. the VerSe mask T9-L5 in ``../shared``), the levels it holds are painted from their real
  shapes instead, rescaled to the phantom's vertebrae.
* **Ribs** (with costal cartilage) on thoracic vertebrae only, sloping down anteriorly; the last
  two pairs are short and floating. Sternum, clavicles and scapulae in the chest.
* **Chest**: lungs down to a domed diaphragm (lowest in the posterior recesses around T12),
  mediastinum, heart, aorta (ascending, arch, descending), pulmonary arteries, trachea/bronchi,
  oesophagus; thyroid and neck vessels above.
* **Abdomen**: liver on the right down to about L2, spleen, stomach with an air-fluid level,
  pancreas, kidneys (about T12-L3, cortex/medulla/sinus), diaphragmatic crura, psoas muscles
  appearing at L1 and growing caudally, quadratus lumborum, erector spinae, aorta bifurcating
  at L4, IVC, colon and small bowel with gas pockets.
* **Pelvis**: iliac wings with the crest top near the L4/L5 disc, iliacus, sacrum (with alae and
  SI joints) below the last lumbar vertebra, bladder, rectum, acetabula, femoral heads, necks and
  trochanters at the bottom of whole-body scans.
* **Patient and scanner**: body size, subcutaneous and visceral fat, arms (down, optionally),
  in-plane roll, scoliosis, patient table, contrast phase, partial-volume averaging over the
  slice thickness, in-plane blur, noise with a grain (correlated over about a millimetre, as real
  CT noise is), int16 HU.

Coordinates
-----------
Voxels are indexed ``[k, j, i]`` (as :class:`~l3locator.volume.CTVolume`): ``i`` runs toward the
patient's left, ``j`` toward posterior and ``k`` toward superior (``k = 0`` is the lowest slice)
unless ``superior_first=True`` stores slices head-first. ``ijk_to_ras`` maps to RAS millimetres
with an arbitrary origin. Slice spacing equals the slice thickness. Internally anatomy is laid out
in "torso" millimetres (+x patient right, +y anterior, +z superior) around the torso centre.

Modules
-------
``generate`` (:func:`generate_phantom`, :class:`Phantom`), ``cases`` (:func:`write_phantom_case`),
``writing`` (NIfTI / NRRD / DICOM writers), ``tissues`` (body-composition ground truth: the true
muscle, IMAT, VAT and SAT areas of a slice, repainted on request); the patient: ``vertebrae``, ``patient``, ``torso``;
the anatomy in painting order (``anatomy``): ``body``, ``abdomen``, ``chest``,
``vessels``, ``retroperitoneum``, ``spine`` (with ``vertebra_templates``), ``ribcage``, ``pelvis``; drawing: ``shapes``,
``canvas``; the acquisition: ``scan``, ``scanner``; after rendering: ``crops`` (a tight crop around the
spine, :func:`~l3locator.phantoms.crops.crop_around_spine`).

Vertebra labels and variants
----------------------------
Labels are VerSe ids: C1-C7 = 1-7, T1-T12 = 8-19, L1-L5 = 20-24, L6 = 25, sacrum = 26, T13 = 28
(0 = background), painted on vertebral bodies and posterior elements (not discs, not ribs).
Segment identity follows the ribs: a vertebra is *thoracic* if and only if it bears a rib pair,
and the lumbar vertebrae are the rib-free presacral vertebrae numbered from the top. So L1 is the
first vertebra below the last rib-bearing one and **L3 is always the third vertebra below the last
rib-bearing vertebra**, whatever the variant:

* ``"normal"``: T1-T12 bear ribs, L1-L5, sacrum.
* ``"11_ribs"``: 11 thoracic vertebrae (T1-T11 bear ribs; id 19 is absent), L1-L5.
* ``"13_ribs"``: 13 thoracic vertebrae (T13 = 28 bears the 13th rib pair), L1-L5.
* ``"lumbarised"``: S1 is free: six lumbar vertebrae L1-L6 (L6 = 25); a four-segment sacrum.
* ``"sacralised"``: L5 is fused into the sacrum: four lumbar vertebrae L1-L4; a six-segment sacrum.

Counting up from the sacrum gives the wrong level in the last two; counting ribs gives the right
one in all five. Organs keep their usual relation to the ribs/diaphragm above and to the sacrum
(iliac crest at the last lumbar level) below, as in real transitional anatomy.
"""

from __future__ import annotations

from .cases import write_phantom_case
from .generate import Phantom, generate_phantom
from .scan import EXTENTS, THICKNESSES_MM
from .vertebrae import L3_LABEL, VARIANTS, VERSE_IDS

__all__ = ["EXTENTS", "L3_LABEL", "THICKNESSES_MM", "VARIANTS", "VERSE_IDS", "Phantom", "generate_phantom", "write_phantom_case"]
