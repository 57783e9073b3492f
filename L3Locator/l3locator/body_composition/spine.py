"""The vertebra on an axial slice and the frame it gives: where posterior is, how far from the midline.

Slices are 2D ``[row, column]`` with ``spacing_mm = (row spacing, column spacing)`` in mm; nothing
assumes which side of the array is anterior: the frame is found from the anatomy.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .masks import Spacing, closing, components_touching, dilate

#: The vertebra is the bone with the most cortical bone: HU above this, summed.
CORTEX_HU = 300.0
#: Bone components this close (mm) to the vertebra's densest part belong to the vertebra
#: (the vertebral body and the posterior elements, across the spinal canal).
SPINE_GAP_MM = 20.0
#: Gaps between the vertebra's bones narrower than twice this (mm) are closed, so that the
#: spinal canal counts as spine where its bony ring is nearly whole on the slice.
SPINE_CLOSING_MM = 5.0
#: The envelope's principal axes give the posterior direction when one is this many times the other.
ELONGATION = 1.1
#: The spinal canal lies within this distance (mm) of the midline and up to
#: :data:`CANAL_DEPTH_MM` behind the vertebral body's back edge.
CANAL_HALF_WIDTH_MM = 12.0
CANAL_DEPTH_MM = 22.0


@dataclass(frozen=True)
class SpineFrame:
    """Where the vertebra is, as distances of every pixel of the slice (mm).

    The *centre* is the vertebra pixel deepest inside it (the vertebral body's centre); its
    distance to the vertebra's edge, ``half_depth_mm``, puts the body's front edge.

    Attributes:
        mask: the vertebra with its canal (:func:`spine_mask`).
        depth_mm: per pixel, how far behind the centre it lies (negative: in front of it).
        side_mm: per pixel, how far it lies from the midline through the centre (>= 0).
        half_depth_mm: how far the vertebral body's front edge lies in front of the centre.
    """

    mask: np.ndarray
    depth_mm: np.ndarray
    side_mm: np.ndarray
    half_depth_mm: float

    def canal(self) -> np.ndarray:
        """Where the spinal canal lies: behind the vertebral body's centre, up to
        :data:`CANAL_DEPTH_MM` behind its back edge, within :data:`CANAL_HALF_WIDTH_MM` of the
        midline (its contents are near muscle HU, and a slice may cut its bony ring open)."""
        return (self.side_mm <= CANAL_HALF_WIDTH_MM) & (self.depth_mm >= 0.0) & (self.depth_mm <= self.half_depth_mm + CANAL_DEPTH_MM)


def spine_mask(hu: np.ndarray, bone: np.ndarray, envelope: np.ndarray, spacing_mm: Spacing) -> np.ndarray:
    """The vertebra with the spinal canal, as a mask.

    Of the bone inside ``envelope``: the component with the most cortical bone (HU above
    :data:`CORTEX_HU`, summed; contrast in a kidney or vessel is seldom that dense), the
    components within :data:`SPINE_GAP_MM` of it, and what they enclose once gaps up to
    ``2 *`` :data:`SPINE_CLOSING_MM` are closed. Empty when there is no bone.
    """
    parts, count = ndimage.label(bone & envelope, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros_like(bone)
    cortex = np.bincount(parts.ravel(), weights=np.clip(hu - CORTEX_HU, 0.0, None).ravel(), minlength=count + 1)
    cortex[0] = -1.0
    densest = parts == int(np.argmax(cortex))
    vertebra = components_touching(bone & envelope, dilate(densest, SPINE_GAP_MM, spacing_mm))
    return ndimage.binary_fill_holes(closing(vertebra, SPINE_CLOSING_MM, spacing_mm))


def spine_frame(spine: np.ndarray, envelope: np.ndarray, spacing_mm: Spacing) -> SpineFrame | None:
    """The :class:`SpineFrame` of ``spine`` (a :func:`spine_mask`), or None without a spine.

    Posterior runs along the envelope's shorter principal axis (an abdomen is wider than deep)
    when the longer is at least :data:`ELONGATION` times it, else from the envelope's centroid
    to the vertebral body's centre; either way it points from the envelope's centroid toward the
    spine.
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
    posterior = posterior / length
    depth = rows * posterior[0] + cols * posterior[1]
    side = np.abs(cols * posterior[0] - rows * posterior[1])
    return SpineFrame(spine, depth, side, float(inside[centre]))
