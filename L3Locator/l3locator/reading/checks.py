"""The checks a volume must pass before L3 is searched in it.

One rule for every source: a file read by :func:`~l3locator.reading.load_ct`, a Slicer node or
a volume built in memory. Each failure raises :class:`~l3locator.errors.InputError` with one
line naming the volume and the reason.
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError
from ..volume import CTVolume
from ._common import check_ct_values

#: Fewest axial slices that make a stack to search.
MIN_SLICES = 2
#: Smallest in-plane size of an axial slice, along each of its two axes. An axial CT slice has
#: hundreds of pixels per side and shows at least a vertebral body, about 30-35 mm deep and
#: 40-50 mm wide in an adult lumbar spine: a field under 30 mm cannot show one, and under 16
#: pixels is a line or a projection, not an image. (A tight crop around L2-L4, 73 x 73 pixels
#: of 1.5 mm, passes.)
MIN_IN_PLANE_PIXELS = 16
MIN_IN_PLANE_MM = 30.0


def in_plane_extent_mm(volume: CTVolume) -> tuple[float, float]:
    """Size of an axial slice in mm along its two in-plane axes (voxels times spacing)."""
    in_plane = [a for a in range(3) if a != volume.axial_axis]
    return tuple(int(volume.voxels.shape[2 - a]) * float(volume.spacing[a]) for a in in_plane)


def _check_in_plane_size(volume: CTVolume, name: str) -> None:
    in_plane = [a for a in range(3) if a != volume.axial_axis]
    pixels = [int(volume.voxels.shape[2 - a]) for a in in_plane]
    extent_mm = in_plane_extent_mm(volume)
    if min(pixels) < MIN_IN_PLANE_PIXELS or min(extent_mm) < MIN_IN_PLANE_MM:
        raise InputError(
            f"{name}: axial slices of {pixels[0]} x {pixels[1]} voxels ({extent_mm[0]:.1f} x {extent_mm[1]:.1f} mm) "
            f"are too small to show a vertebra; an axial CT slice needs at least {MIN_IN_PLANE_PIXELS} voxels "
            f"and {MIN_IN_PLANE_MM:g} mm along each side"
        )


def check_volume(volume: CTVolume) -> None:
    """Reject a volume that cannot be searched for L3, with a message a user can act on.

    Checked, in this order: at least :data:`MIN_SLICES` axial slices; a real numeric voxel
    type; values like CT in HU (air and bone, finite: :func:`~l3locator.reading.check_ct_values`);
    axial slices of at least :data:`MIN_IN_PLANE_PIXELS` voxels and :data:`MIN_IN_PLANE_MM` mm
    per side. A volume that has not been through the value check (built in memory:
    ``"looks_like_ct"`` absent from its metadata) is checked here, and its metadata updated
    (verdict, value range, warning) as a reader would.
    """
    name = volume.source or "volume"
    if volume.num_slices < MIN_SLICES:
        raise InputError(f"{name}: only {volume.num_slices} axial slice(s); L3 search needs a stack of slices")
    dtype = volume.voxels.dtype
    if not np.issubdtype(dtype, np.number) or np.issubdtype(dtype, np.complexfloating):
        raise InputError(f"{name}: voxel type {dtype} is not a CT intensity")
    metadata = volume.metadata
    if "looks_like_ct" not in metadata:
        check_ct_values(volume.voxels, metadata)
    if metadata["looks_like_ct"] is False:
        problem = metadata.get("ct_value_problem")
        reason = f"; {problem}" if problem else ""
        raise InputError(
            f"{name}: values do not look like CT in Hounsfield units{reason}; is this an MR, a PET, a label map "
            "or a processed image?"
        )
    _check_in_plane_size(volume, name)
