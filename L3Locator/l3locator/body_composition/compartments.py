"""Tissue compartments of one axial slice, and the tissue label map they give: :func:`segment_slice`.

A pixel's HU range says which tissues it could be; its compartment decides which one it is.
The steps (radii and distances in mm, so the same on any pixel size):

1. **Body**: the largest region denser than -500 HU, the table cut off, holes filled.
   **Bone**: above 150 HU, cortex gaps closed, marrow filled (:mod:`~l3locator.body_composition.masks`).
   **Skin**: the outer :data:`SKIN_MM` of the body; it is none of the four tissues.
2. **Muscle envelope**: everything inside the outer surface of the muscle wall. The fat the skin
   reaches without crossing soft tissue or bone (smoothed a little and thresholded at
   :data:`WALL_HU`, so that a wall thinner than a pixel or two still counts) is the
   subcutaneous space; the rest of the body, holes filled, is the envelope. Gaps in the wall are
   bridged, as narrowly as keeps the fat out of the belly; a gap too wide for that is cut along
   the wall's convex hull, with a warning (:func:`muscle_envelope`).
3. **Vertebra and frame**: the densest bone with the spinal canal, and from it where posterior
   is (:mod:`~l3locator.body_composition.spine`).
4. **Wall and back muscles**: muscle-range pixels of the envelope (not the canal) that are
   (a) within :data:`THIN_WALL_MM` of the envelope's surface and connected to it: the
   abdominal wall, whole where it is thin; or (b) deeper but at least
   :data:`BACK_MUSCLES_MM` behind the vertebral body's centre, in parts at least
   ``2 *`` :data:`ORGAN_NECK_MM` thick that touch (a): the erector spinae and quadratus
   lumborum. A kidney or bowel loop against the wall stays out, save its outer few mm
   (:func:`wall_muscles`).
5. **Psoas**: muscle-range parts beside the vertebra, lateral to it and not in front of its
   body (:func:`psoas_muscles`).
6. **Tissues**: muscle = (4) + (5); IMAT = IMAT-range pixels inside the muscles' outline (gaps
   up to ``2 *`` :data:`IMAT_GAP_MM` closed, holes up to :data:`IMAT_HOLE_MM2` filled);
   VAT = VAT-range pixels of the envelope outside that outline; SAT = SAT-range pixels
   outside the envelope. The vertebra and its canal are none of them.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .masks import (
    Spacing, body_mask, bone_mask, closing, components_touching, convex_hull, dilate, fill_small_holes, largest_component, opening,
    touches_border, without_specks,
)
from .spine import SpineFrame, spine_frame, spine_mask
from .tissues import TISSUE_LABELS, HURanges

#: Depth (mm) of the skin under the body's surface: none of the four tissues.
SKIN_MM = 2.0
#: Layers of the body thinner than twice this (mm) left outside the subcutaneous fat are skin, not wall.
SKIN_LAYER_MM = 2.5
#: What holds the subcutaneous fat back: soft tissue denser than this (HU) once smoothed with a
#: Gaussian of :data:`WALL_SMOOTHING_MM` mm (standard deviation), so that a wall thinner than a
#: pixel or two, which partial volume takes below the muscle range, still counts.
WALL_HU = -50.0
WALL_SMOOTHING_MM = 1.0
#: Specks of that barrier smaller than this (mm^2) in the subcutaneous fat (noise, small
#: vessels) hold nothing back.
SPECK_MM2 = 25.0
#: Barrier parts thinner than twice this (mm), such as septa in the subcutaneous fat, are left
#: out of the barrier's convex hull.
HULL_OPENING_MM = 1.5
#: Gaps in the wall narrower than twice these (mm) are bridged, the narrowest first (see
#: :func:`muscle_envelope`).
WALL_GAP_MM = (4.0, 7.0, 10.0, 14.0, 18.0)
#: The subcutaneous space reaches no deeper (mm) into the convex hull of the muscle wall unless
#: it leaked into the belly.
LEAK_DEPTH_MM = 45.0
#: The outer layer (mm) of the envelope in which muscle-range tissue is wall muscle.
THIN_WALL_MM = 12.0
#: Deeper muscle belongs to the back: at least this far (mm) behind the vertebral body's centre.
BACK_MUSCLES_MM = 15.0
#: Deeper muscle joins the wall only through parts at least twice this thick (mm).
ORGAN_NECK_MM = 4.0
#: Farthest a psoas pixel lies from the vertebra (mm).
PSOAS_REACH_MM = 50.0
#: A psoas part comes at least this close (mm) to the vertebra (a fat plane may part them).
PSOAS_TOUCH_MM = 5.0
#: A psoas part lies on average at least this far (mm) from the midline.
PSOAS_LATERAL_MM = 15.0
#: The psoas may reach this far (mm) in front of the vertebral body's front edge, where more
#: than :data:`PSOAS_MEDIAL_MM` from the midline (the aorta and vena cava lie nearer it).
PSOAS_FORWARD_MM = 8.0
PSOAS_MEDIAL_MM = 25.0
#: Fat in gaps of the muscles narrower than twice this (mm) is intermuscular (IMAT).
IMAT_GAP_MM = 2.5
#: Fat in holes of the muscles up to this area (mm^2) is intramuscular (IMAT).
IMAT_HOLE_MM2 = 400.0


def in_range(hu: np.ndarray, limits: tuple[float, float]) -> np.ndarray:
    """Pixels whose HU lies in ``limits`` (inclusive)."""
    return (hu >= limits[0]) & (hu <= limits[1])


def muscle_envelope(body: np.ndarray, fat: np.ndarray, barrier: np.ndarray, skin: np.ndarray, spacing_mm: Spacing) -> tuple[np.ndarray, bool]:
    """The body inside the outer surface of the muscle wall (step 2 of the module docstring),
    and whether the subcutaneous fat was kept out of the belly.

    The subcutaneous space is the ``fat`` that the ``skin`` reaches without crossing ``barrier``
    (soft tissue and bone, specks under :data:`SPECK_MM2` ignored; gas in bowel is not fat and
    stops it too) once gaps in the barrier are bridged. Through a gap in the wall (a wide linea
    alba) it would flood the belly: it must stay within :data:`LEAK_DEPTH_MM` of the edge of the
    barrier's convex hull (the subcutaneous fat lies outside the wall but for shallow hollows,
    between the back muscles). Gaps are bridged with the radii of :data:`WALL_GAP_MM` in turn,
    the first that keeps the fat out wins; when none does, the subcutaneous fat is what lies
    outside the barrier's convex hull (returned with False: fat in hollows of the wall then
    counts as inside it).
    """
    barrier = without_specks(barrier, SPECK_MM2, spacing_mm)
    hull = convex_hull(opening(barrier, HULL_OPENING_MM, spacing_mm))  # thin septa in the fat do not widen it
    hull_depth = ndimage.distance_transform_edt(hull, sampling=spacing_mm)
    for radius in WALL_GAP_MM:
        subcutaneous = components_touching(fat & ~closing(barrier, radius, spacing_mm) | skin, skin)
        if not (subcutaneous & (hull_depth > LEAK_DEPTH_MM)).any():
            return _inside(body & ~subcutaneous, spacing_mm), True
    return _inside(body & ~components_touching(fat & ~hull | skin, skin), spacing_mm), False


def _inside(rest: np.ndarray, spacing_mm: Spacing) -> np.ndarray:
    """The envelope from what the subcutaneous space leaves of the body: its largest part, holes
    filled, without layers thinner than ``2 *`` :data:`SKIN_LAYER_MM` (thick skin where there is
    no fat under it)."""
    return ndimage.binary_fill_holes(largest_component(opening(rest, SKIN_LAYER_MM, spacing_mm)))


def wall_muscles(candidates: np.ndarray, envelope: np.ndarray, frame: SpineFrame | None, spacing_mm: Spacing) -> np.ndarray:
    """The wall and back muscles among the muscle-range ``candidates`` (step 4 of the module
    docstring); without a vertebra, deeper muscle is not limited to the back."""
    depth = ndimage.distance_transform_edt(envelope, sampling=spacing_mm)
    surface = envelope & (depth <= 2.0 * max(spacing_mm))
    outer = components_touching(candidates & (depth <= THIN_WALL_MM), surface)
    back = candidates if frame is None else candidates & (frame.depth_mm >= BACK_MUSCLES_MM)
    thick = components_touching(opening(back, ORGAN_NECK_MM, spacing_mm), dilate(outer, 2.0 * max(spacing_mm), spacing_mm))
    return outer | (back & dilate(thick, ORGAN_NECK_MM + max(spacing_mm), spacing_mm))


def psoas_muscles(candidates: np.ndarray, frame: SpineFrame | None, spacing_mm: Spacing) -> np.ndarray:
    """The psoas among the muscle-range ``candidates`` (step 5 of the module docstring).

    Psoas territory lies within :data:`PSOAS_REACH_MM` of the vertebra and behind its body's
    front edge, or up to :data:`PSOAS_FORWARD_MM` in front of it more than
    :data:`PSOAS_MEDIAL_MM` from the midline (the psoas's front; the aorta and vena cava lie
    nearer the midline). Its connected parts within :data:`PSOAS_TOUCH_MM` of the vertebra and
    on average at least :data:`PSOAS_LATERAL_MM` from the midline are psoas.
    """
    if frame is None:
        return np.zeros_like(candidates)
    depth, side, front = frame.depth_mm, frame.side_mm, -frame.half_depth_mm
    territory = (depth >= front) | ((depth >= front - PSOAS_FORWARD_MM) & (side >= PSOAS_MEDIAL_MM))
    near = candidates & territory & dilate(frame.mask, PSOAS_REACH_MM, spacing_mm)
    parts, count = ndimage.label(near, structure=np.ones((3, 3), bool))
    touching = np.unique(parts[dilate(frame.mask, PSOAS_TOUCH_MM, spacing_mm) & near])
    keep = np.zeros(count + 1, bool)
    for label in touching[touching > 0]:
        keep[label] = side[parts == label].mean() >= PSOAS_LATERAL_MM
    return keep[parts]


class SliceSegmentation(NamedTuple):
    """A tissue label map and what the segmentation noticed about the slice (one line each)."""

    labels: np.ndarray
    notes: list[str]


def segment(hu_slice: np.ndarray, pixel_spacing_mm: tuple[float, float], hu_ranges: HURanges = HURanges()) -> SliceSegmentation:
    """:func:`segment_slice` with its notes: the body touching the field of view, no vertebra
    found, a muscle wall that did not hold the subcutaneous fat back."""
    hu = np.asarray(hu_slice, dtype=np.float32)
    if hu.ndim != 2:
        raise ValueError(f"a slice must be 2D, got shape {hu.shape}")
    spacing = (float(pixel_spacing_mm[0]), float(pixel_spacing_mm[1]))
    if not (np.isfinite(spacing).all() and spacing[0] > 0 and spacing[1] > 0):
        raise ValueError(f"pixel spacing must be two positive numbers (mm), got {pixel_spacing_mm}")
    labels = np.zeros(hu.shape, np.uint8)
    body = body_mask(hu, spacing)
    if not body.any():
        return SliceSegmentation(labels, ["no body on the slice (nothing denser than -500 HU)"])
    notes = []
    if touches_border(body):
        notes.append("the body outline touches the field of view: tissue beyond the image edge is not measured")
    bone = bone_mask(hu, body, spacing)
    depth = ndimage.distance_transform_edt(body, sampling=spacing)
    skin = body & (depth <= SKIN_MM)
    soft = body & ~bone & ~skin
    smoothed = ndimage.gaussian_filter(hu, [WALL_SMOOTHING_MM / s for s in spacing])
    under_skin = depth > SKIN_MM + 2.0 * WALL_SMOOTHING_MM  # the skin, smoothed, is no wall
    barrier = (smoothed >= WALL_HU) & soft & under_skin | bone
    envelope, sealed = muscle_envelope(body, in_range(hu, hu_ranges.sat) & body & ~bone, barrier, skin, spacing)
    if not sealed:
        notes.append("the abdominal wall has a wide gap: subcutaneous fat was told from visceral fat by the wall's convex hull; "
                     "check the SAT/VAT split")
    spine = spine_mask(hu, bone, envelope, spacing)
    soft &= ~spine
    frame = spine_frame(spine, envelope, spacing)
    candidates = in_range(hu, hu_ranges.muscle) & soft & envelope
    if frame is None:
        notes.append("no vertebra on the slice (no bone inside the muscle wall): the psoas is not measured")
    else:
        candidates &= ~frame.canal()
    muscle = wall_muscles(candidates, envelope, frame, spacing)
    muscle |= psoas_muscles(candidates & ~muscle, frame, spacing)
    muscle_outline = fill_small_holes(closing(muscle, IMAT_GAP_MM, spacing), IMAT_HOLE_MM2, spacing) & envelope & soft
    labels[in_range(hu, hu_ranges.sat) & soft & ~envelope] = TISSUE_LABELS["sat"]
    labels[in_range(hu, hu_ranges.vat) & soft & envelope & ~muscle_outline] = TISSUE_LABELS["vat"]
    labels[in_range(hu, hu_ranges.imat) & muscle_outline & ~muscle] = TISSUE_LABELS["imat"]
    labels[muscle] = TISSUE_LABELS["muscle"]
    return SliceSegmentation(labels, notes)


def segment_slice(hu_slice: np.ndarray, pixel_spacing_mm: tuple[float, float], hu_ranges: HURanges = HURanges()) -> np.ndarray:
    """Tissue label map of one axial CT slice (the method: this module's docstring).

    Args:
        hu_slice: the slice in HU, 2D ``[row, column]`` (``[j, i]`` of an axially stored
            volume); any in-plane orientation: the anatomy, not the array, says where posterior is.
        pixel_spacing_mm: ``(row spacing, column spacing)`` in mm: the distance between
            neighbouring rows, then between neighbouring columns.
        hu_ranges: the HU range of each tissue.

    Returns:
        uint8 labels on the slice's grid: :data:`~l3locator.body_composition.TISSUE_LABELS`
        (1 muscle, 2 IMAT, 3 VAT, 4 SAT), 0 for everything else.

    Raises:
        ValueError: ``hu_slice`` is not 2D, or a spacing is not a positive number.
    """
    return segment(hu_slice, pixel_spacing_mm, hu_ranges).labels
