"""Tissue compartments of one axial slice: body, muscle envelope, muscles, and the tissue label map.

A pixel's HU range says which tissues it could be; its compartment decides which one it is.
The steps of :func:`segment_slice` (radii in mm, so the same on any pixel size):

1. **Body**: the largest region denser than -500 HU, the table cut off, holes filled
   (:func:`~l3locator.body_composition.masks.body_mask`). **Bone**: above 150 HU, cortex gaps
   closed and marrow filled; bone is never muscle or fat. **Skin**: the outer
   :data:`SKIN_MM` of the body; its soft tissue is not muscle.
2. **Muscle envelope**: everything inside the outer surface of the muscle wall. The fat and
   skin reachable from the body's surface without crossing soft tissue or bone (the slice
   smoothed a little and thresholded at :data:`WALL_HU`, so that a thin wall counts; gaps in
   the wall bridged, as narrow as keeps the envelope nearly convex) is the subcutaneous space;
   the rest of the body, holes filled, is the envelope.
3. **Wall muscles** (abdominal wall, back muscles, quadratus lumborum): muscle-range pixels of
   the envelope connected to its surface, in two parts: (a) the outer layer, within
   :data:`THIN_WALL_MM` of the envelope's surface, which holds a thin wall whole; (b) deeper
   muscle only as parts at least ``2 *`` :data:`ORGAN_NECK_MM` thick that reach the surface,
   so an organ joined to the wall by a narrower neck (a kidney on the quadratus lumborum, a
   bowel loop on the wall) stays out.
4. **Psoas**: muscle-range parts beside the spine (the densest bone component of the
   envelope, :func:`spine_mask`), lateral to it and not in front of its front edge (bar the psoas's own front,
   away from the midline), within :data:`PSOAS_REACH_MM` of it; the aorta, vena cava and bowel
   in front of the spine stay out (:func:`psoas_muscles`).
5. **Tissues**: muscle = (3) + (4); IMAT = IMAT-range pixels of the envelope inside the muscles'
   outline (gaps up to ``2 *`` :data:`IMAT_GAP_MM` closed, holes up to :data:`IMAT_HOLE_MM2`
   filled); VAT = VAT-range pixels of the
   envelope outside the muscles' outline; SAT = SAT-range pixels outside the envelope.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .masks import (
    BONE_HU, Spacing, body_mask, bone_mask, closing, components_touching, convex_hull, dilate, fill_small_holes, largest_component, opening,
    without_specks,
)
from .tissues import TISSUE_LABELS, HURanges

#: Depth (mm) of the skin under the body's surface: soft tissue there is skin, not muscle.
SKIN_MM = 2.0
#: Gaps in the muscle wall narrower than twice these (mm) are bridged when finding the subcutaneous
#: space, the narrowest first (see :func:`muscle_envelope`).
WALL_GAP_MM = (4.0, 7.0, 10.0, 14.0)
#: What holds the subcutaneous fat back: soft tissue denser than this (HU) once smoothed with a
#: Gaussian of :data:`WALL_SMOOTHING_MM` (standard deviation), so that a wall thinner than a
#: pixel or two, which partial volume takes below the muscle range, still counts.
WALL_HU = -50.0
WALL_SMOOTHING_MM = 1.0
#: Specks of the barrier smaller than this (mm^2) in the subcutaneous fat (noise, small vessels) hold nothing back.
SPECK_MM2 = 25.0
#: The envelope's area is at least this fraction of its convex hull's unless the subcutaneous space leaked in.
ENVELOPE_SOLIDITY = 0.85
#: The outer layer (mm) of the muscle envelope in which muscle-range tissue is taken as wall muscle.
THIN_WALL_MM = 12.0
#: Deeper muscle belongs to the back (erector spinae, quadratus lumborum): it lies at least this
#: far (mm) behind the vertebral body's centre; a kidney or bowel deeper in front does not count.
BACK_MUSCLES_MM = 15.0
#: Deeper muscle joins the wall only through a neck at least twice this thick (mm).
ORGAN_NECK_MM = 6.0
#: The vertebra is chosen by its cortical bone: HU above this.
CORTEX_HU = 300.0
#: Bone components this close (mm) to the vertebra's densest part belong to the vertebra
#: (across the spinal canal).
SPINE_GAP_MM = 20.0
#: The spinal canal's half-width and depth behind the vertebral body (mm).
CANAL_HALF_WIDTH_MM = 12.0
CANAL_DEPTH_MM = 22.0
#: The envelope's principal axes give the posterior direction when one is this many times the other.
ELONGATION = 1.1
#: Gaps between the vertebra's bones narrower than twice this (mm) are closed, so that the
#: spinal canal counts as spine even where its bony ring is open on the slice.
SPINE_CLOSING_MM = 5.0
#: Farthest a psoas pixel lies from the spine (mm).
PSOAS_REACH_MM = 50.0
#: A psoas part comes at least this close (mm) to the vertebra (a fat plane may part them).
PSOAS_TOUCH_MM = 5.0
#: A psoas part lies on average at least this far (mm) to the side of the spine's centre.
PSOAS_LATERAL_MM = 15.0
#: The psoas may reach this far (mm) in front of the spine's front edge, where more than
#: :data:`PSOAS_MEDIAL_MM` to the side of the spine's centre.
PSOAS_FORWARD_MM = 8.0
PSOAS_MEDIAL_MM = 25.0
#: Fat in gaps of the muscles narrower than twice this (mm) is intermuscular (IMAT).
IMAT_GAP_MM = 2.5
#: Fat in holes of the muscles up to this area (mm^2) is intramuscular (IMAT).
IMAT_HOLE_MM2 = 400.0


def in_range(hu: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """Pixels whose HU lies in ``limits`` (inclusive)."""
    return (hu >= limits[0]) & (hu <= limits[1])


def muscle_envelope(body: np.ndarray, fat: np.ndarray, barrier: np.ndarray, skin: np.ndarray, spacing_mm: Spacing) -> np.ndarray:
    """The body inside the outer surface of the muscle wall (step 2 of the module docstring).

    The subcutaneous space is the ``fat`` the skin reaches without crossing ``barrier`` (soft
    tissue and bone; specks under :data:`SPECK_MM2` ignored) once its gaps are bridged (gas in bowel
    stops it too); the envelope is the rest, filled. Gaps are
    bridged with the radii of :data:`WALL_GAP_MM` in turn, keeping the first envelope that is
    nearly convex (:data:`ENVELOPE_SOLIDITY`): through a wider gap (a thin linea alba) the
    subcutaneous space floods the belly and leaves a crescent.
    """
    envelope = body
    barrier = without_specks(barrier, SPECK_MM2, spacing_mm)
    for radius in WALL_GAP_MM:
        sealed = closing(barrier, radius, spacing_mm)
        subcutaneous = components_touching(fat & ~sealed | skin, skin)
        envelope = ndimage.binary_fill_holes(largest_component(body & ~subcutaneous))
        if envelope.sum() >= ENVELOPE_SOLIDITY * convex_hull(envelope).sum():
            break
    return envelope


@dataclass(frozen=True)
class SpineFrame:
    """Where the vertebra is, as distances of every pixel of the slice (mm).

    The *centre* is the vertebra pixel deepest inside it (the vertebral body's centre); its
    distance to the body's edge is ``half_depth_mm``. *Posterior* points from the envelope's
    centre to the vertebra's centre.

    Attributes:
        mask: the vertebra (:func:`spine_mask`).
        depth_mm: per pixel, how far behind the centre it lies (negative: in front).
        side_mm: per pixel, how far it lies from the midline through the centre (>= 0).
        half_depth_mm: how far the body's front edge lies in front of the centre.
    """

    mask: np.ndarray
    depth_mm: np.ndarray
    side_mm: np.ndarray
    half_depth_mm: float

    def canal(self) -> np.ndarray:
        """Where the spinal canal lies: behind the vertebral body's centre, up to
        :data:`CANAL_DEPTH_MM` behind its back edge, within :data:`CANAL_HALF_WIDTH_MM` of the
        midline (its contents are near muscle HU; a slice may cut its bony ring open)."""
        return (self.side_mm <= CANAL_HALF_WIDTH_MM) & (self.depth_mm >= 0.0) & (self.depth_mm <= self.half_depth_mm + CANAL_DEPTH_MM)


def spine_mask(hu: np.ndarray, bone: np.ndarray, envelope: np.ndarray, spacing_mm: Spacing) -> np.ndarray:
    """The vertebra, with the spinal canal: the envelope's bone component with the most cortical
    bone (HU above :data:`CORTEX_HU`, summed; contrast in a kidney or vessel is seldom that
    dense), the bone components within :data:`SPINE_GAP_MM` of it (the vertebral body and the
    posterior elements need not touch on a slice), and what they enclose once gaps up to
    ``2 *`` :data:`SPINE_CLOSING_MM` are closed. Empty when the slice has no bone."""
    parts, count = ndimage.label(bone & envelope, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros_like(bone)
    cortex = np.bincount(parts.ravel(), weights=np.clip(hu - CORTEX_HU, 0.0, None).ravel(), minlength=count + 1)
    cortex[0] = -1.0
    densest = parts == int(np.argmax(cortex))
    vertebra = components_touching(bone & envelope, dilate(densest, SPINE_GAP_MM, spacing_mm))
    return ndimage.binary_fill_holes(closing(vertebra, SPINE_CLOSING_MM, spacing_mm))


def spine_frame(spine: np.ndarray, envelope: np.ndarray, spacing_mm: Spacing) -> SpineFrame | None:
    """The :class:`SpineFrame` of ``spine``, or None without one.

    The posterior direction runs along the envelope's shorter principal axis (an abdomen is
    wider than deep) when it is at least :data:`ELONGATION` times longer one way than the other,
    else from the envelope's centroid to the vertebral body's centre; either way it points
    from the envelope's centroid toward the spine.
    """
    if not spine.any():
        return None
    inside = ndimage.distance_transform_edt(spine, sampling=spacing_mm)
    centre = np.unravel_index(int(np.argmax(inside)), spine.shape)
    rows, cols = np.indices(spine.shape, dtype=np.float64)
    rows = (rows - centre[0]) * spacing_mm[0]
    cols = (cols - centre[1]) * spacing_mm[1]
    points = np.stack([rows[envelope], cols[envelope]])
    toward_spine = -points.mean(axis=1)
    variances, axes = np.linalg.eigh(np.cov(points))
    posterior = axes[:, 0] if variances[1] >= ELONGATION**2 * variances[0] else toward_spine
    if posterior @ toward_spine < 0:
        posterior = -posterior
    length = float(np.linalg.norm(posterior))
    if not length > 0:
        return None
    posterior /= length
    return SpineFrame(spine, rows * posterior[0] + cols * posterior[1], np.abs(cols * posterior[0] - rows * posterior[1]),
                      float(inside[centre]))


def wall_muscles(candidates: np.ndarray, envelope: np.ndarray, frame: SpineFrame | None, spacing_mm: Spacing) -> np.ndarray:
    """Muscle-range ``candidates`` of the ``envelope`` that belong to its wall (step 3 of the module docstring)."""
    depth = ndimage.distance_transform_edt(envelope, sampling=spacing_mm)
    surface = envelope & (depth <= 2.0 * max(spacing_mm))
    outer = components_touching(candidates & (depth <= THIN_WALL_MM), surface)
    back = candidates if frame is None else candidates & (frame.depth_mm >= BACK_MUSCLES_MM)
    thick = components_touching(opening(back, ORGAN_NECK_MM, spacing_mm), surface)
    deep = back & dilate(thick, ORGAN_NECK_MM + max(spacing_mm), spacing_mm)
    return outer | deep


def psoas_muscles(candidates: np.ndarray, frame: SpineFrame | None, spacing_mm: Spacing) -> np.ndarray:
    """Muscle-range ``candidates`` beside the spine (step 4 of the module docstring).

    Psoas territory is what lies within :data:`PSOAS_REACH_MM` of the vertebra, behind the
    vertebral body's front edge, or up to :data:`PSOAS_FORWARD_MM` in front of it where more than
    :data:`PSOAS_MEDIAL_MM` to the side (the psoas's front; the aorta and vena cava lie nearer
    the midline). Its parts within :data:`PSOAS_TOUCH_MM` of the vertebra that lie on average at least
    :data:`PSOAS_LATERAL_MM` to the side are psoas.
    """
    if frame is None:
        return np.zeros_like(candidates)
    depth, side = frame.depth_mm, frame.side_mm
    front = -frame.half_depth_mm
    territory = (depth >= front) | ((depth >= front - PSOAS_FORWARD_MM) & (side >= PSOAS_MEDIAL_MM))
    near = candidates & territory & dilate(frame.mask, PSOAS_REACH_MM, spacing_mm)
    parts, count = ndimage.label(near, structure=np.ones((3, 3), bool))
    touching = np.unique(parts[dilate(frame.mask, PSOAS_TOUCH_MM, spacing_mm) & near])
    keep = np.zeros(count + 1, bool)
    for label in touching[touching > 0]:
        keep[label] = side[parts == label].mean() >= PSOAS_LATERAL_MM
    return keep[parts]


def segment_slice(hu_slice: np.ndarray, pixel_spacing_mm: tuple[float, float], hu_ranges: HURanges = HURanges()) -> np.ndarray:
    """Tissue label map of one axial CT slice.

    Args:
        hu_slice: the slice in HU, 2D ``[row, column]`` (``[j, i]`` of an axially stored volume);
            any orientation: nothing assumes which side is anterior.
        pixel_spacing_mm: ``(row spacing, column spacing)`` in mm.
        hu_ranges: the HU range of each tissue.

    Returns:
        uint8 labels ``[row, column]`` on the slice's grid: :data:`~l3locator.body_composition.TISSUE_LABELS`
        (1 muscle, 2 IMAT, 3 VAT, 4 SAT), 0 for everything else. The method and its limits are
        described in :mod:`l3locator.body_composition`.
    """
    hu = np.asarray(hu_slice, dtype=np.float32)
    if hu.ndim != 2:
        raise ValueError(f"a slice must be 2D, got shape {hu.shape}")
    spacing = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    labels = np.zeros(hu.shape, np.uint8)
    body = body_mask(hu, spacing)
    if not body.any():
        return labels
    bone = bone_mask(hu, body, spacing)
    skin = body & (ndimage.distance_transform_edt(body, sampling=spacing) <= SKIN_MM)
    soft = body & ~bone
    muscle_range = in_range(hu, hu_ranges.muscle) & soft & ~skin
    smoothed = ndimage.gaussian_filter(hu, [WALL_SMOOTHING_MM / s for s in spacing])
    wall_like = (smoothed >= WALL_HU) & soft & ~skin
    envelope = muscle_envelope(body, in_range(hu, hu_ranges.sat) & soft, wall_like | bone, skin, spacing)
    candidates = muscle_range & envelope
    spine = spine_mask(hu, bone, envelope, spacing)
    soft &= ~spine
    candidates &= soft
    frame = spine_frame(spine, envelope, spacing)
    if frame is not None:
        candidates &= ~frame.canal()
    muscle = wall_muscles(candidates, envelope, frame, spacing)
    muscle |= psoas_muscles(candidates & ~muscle, frame, spacing)
    muscle_outline = fill_small_holes(closing(muscle, IMAT_GAP_MM, spacing), IMAT_HOLE_MM2, spacing) & envelope & soft
    imat = in_range(hu, hu_ranges.imat) & muscle_outline & ~muscle
    vat = in_range(hu, hu_ranges.vat) & envelope & soft & ~muscle_outline
    sat = in_range(hu, hu_ranges.sat) & soft & ~envelope & ~skin
    labels[sat] = TISSUE_LABELS["sat"]
    labels[vat] = TISSUE_LABELS["vat"]
    labels[imat] = TISSUE_LABELS["imat"]
    labels[muscle] = TISSUE_LABELS["muscle"]
    return labels
