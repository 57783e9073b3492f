"""Pixel masks of one axial slice: morphology in millimetres, the body outline, bone.

Every function takes a 2D slice indexed ``[row, column]`` with ``spacing_mm = (row spacing,
column spacing)`` in mm (the distance between neighbouring rows, then between neighbouring
columns), so that radii are physical whatever the pixel size, anisotropic pixels included.
Structuring elements are discs, realised with Euclidean distance transforms.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

Spacing = tuple[float, float]
"""``(row spacing, column spacing)`` of a slice, in mm."""

#: Anything denser than this (HU) is body, not air: fat is about -100 HU, lung about -850.
BODY_HU = -500.0
#: Denser than this (HU) is bone (or contrast, or calcium): above the muscle range.
BONE_HU = 150.0
#: Radius (mm) of the opening that detaches the patient table and thin bridges from the body.
TABLE_OPENING_MM = 3.0


def dilate(mask: np.ndarray, radius_mm: float, spacing_mm: Spacing) -> np.ndarray:
    """Pixels within ``radius_mm`` of ``mask`` (a disc dilation)."""
    if not mask.any():
        return mask.copy()
    return ndimage.distance_transform_edt(~mask, sampling=spacing_mm) <= radius_mm


def erode(mask: np.ndarray, radius_mm: float, spacing_mm: Spacing) -> np.ndarray:
    """Pixels of ``mask`` farther than ``radius_mm`` from anything outside it (a disc erosion;
    the image border does not count as outside)."""
    return ndimage.distance_transform_edt(mask, sampling=spacing_mm) > radius_mm


def opening(mask: np.ndarray, radius_mm: float, spacing_mm: Spacing) -> np.ndarray:
    """``mask`` without the parts thinner than ``2 * radius_mm`` (a disc opening)."""
    return dilate(erode(mask, radius_mm, spacing_mm), radius_mm, spacing_mm) & mask


def closing(mask: np.ndarray, radius_mm: float, spacing_mm: Spacing) -> np.ndarray:
    """``mask`` with gaps narrower than ``2 * radius_mm`` bridged (a disc closing), never
    growing beyond ``radius_mm`` from the mask."""
    grown = dilate(mask, radius_mm, spacing_mm)
    padded = np.pad(grown, 1, constant_values=False)  # so that the image border erodes like outside
    return erode(padded, radius_mm, spacing_mm)[1:-1, 1:-1] | mask


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 8-connected component of ``mask`` (empty if ``mask`` is)."""
    components, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    sizes = np.bincount(components.ravel())
    sizes[0] = 0
    return components == int(np.argmax(sizes))


def without_specks(mask: np.ndarray, min_area_mm2: float, spacing_mm: Spacing) -> np.ndarray:
    """``mask`` without its 8-connected components smaller than ``min_area_mm2``."""
    parts, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return mask.copy()
    keep = np.bincount(parts.ravel()) * (spacing_mm[0] * spacing_mm[1]) >= min_area_mm2
    keep[0] = False
    return keep[parts]


def components_touching(mask: np.ndarray, seeds: np.ndarray) -> np.ndarray:
    """The 8-connected components of ``mask`` that hold a pixel of ``seeds``."""
    components, count = ndimage.label(mask, structure=np.ones((3, 3), bool))
    if count == 0:
        return np.zeros_like(mask, dtype=bool)
    keep = np.zeros(count + 1, bool)
    keep[np.unique(components[seeds & mask])] = True
    keep[0] = False
    return keep[components]


def fill_small_holes(mask: np.ndarray, max_area_mm2: float, spacing_mm: Spacing) -> np.ndarray:
    """``mask`` with its holes (regions it encloses) of at most ``max_area_mm2`` filled."""
    holes = ndimage.binary_fill_holes(mask) & ~mask
    parts, count = ndimage.label(holes)
    if count == 0:
        return mask.copy()
    areas = np.bincount(parts.ravel()) * (spacing_mm[0] * spacing_mm[1])
    small = areas <= max_area_mm2
    small[0] = False
    return mask | small[parts]


def convex_hull(mask: np.ndarray) -> np.ndarray:
    """The pixels inside the convex hull of ``mask``'s pixel centres (empty if ``mask`` is)."""
    points = np.argwhere(mask).astype(np.float64)
    if len(points) < 3:
        return mask.copy()
    try:
        hull = ConvexHull(points)
    except QhullError:  # all pixels on one line
        return mask.copy()
    rows, cols = np.indices(mask.shape, dtype=np.float64)
    inside = np.ones(mask.shape, bool)
    for normal_row, normal_col, offset in hull.equations:  # inside: normal . point + offset <= 0
        inside &= normal_row * rows + normal_col * cols + offset <= 1e-9
    return inside | mask


def body_mask(hu: np.ndarray, spacing_mm: Spacing) -> np.ndarray:
    """The patient's body on the slice: the largest region denser than :data:`BODY_HU`, with the
    table and anything joined to the body by a bridge thinner than ``2 *`` :data:`TABLE_OPENING_MM`
    mm cut off, and holes (bowel gas) filled. Arms apart from the trunk are not part of it."""
    dense = hu > BODY_HU
    core = largest_component(opening(dense, TABLE_OPENING_MM, spacing_mm))
    if not core.any():
        return core
    pixel_mm = max(spacing_mm)
    body = largest_component(dense & dilate(core, TABLE_OPENING_MM + pixel_mm, spacing_mm))
    return ndimage.binary_fill_holes(body)


def bone_mask(hu: np.ndarray, body: np.ndarray, spacing_mm: Spacing) -> np.ndarray:
    """Bone in the body: pixels above :data:`BONE_HU` with the gaps of a thin cortex closed
    (1.5 mm) and what they enclose (marrow, whatever its HU) filled. Dense contrast in vessels,
    kidneys or bowel and calcifications come along; none of them is muscle or fat."""
    dense = (hu > BONE_HU) & body
    return ndimage.binary_fill_holes(closing(dense, 1.5, spacing_mm)) & body


def touches_border(mask: np.ndarray) -> bool:
    """Whether ``mask`` reaches the edge of the image (the field of view)."""
    return bool(mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any())
