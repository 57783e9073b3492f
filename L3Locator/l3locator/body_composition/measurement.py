"""Measure body composition on a slice of a CT volume: areas (cm^2), mean HU, SMI.

Slices are taken in the volume's stored order, ``[j, i]`` for an axially stored volume (the
axial axis's plane of ``voxels``, rows and columns as stored), so a label map lies on the CT
slice's own grid and overlays it in 3D Slicer unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..volume import CTVolume
from .compartments import segment
from .tissues import TISSUE_LABELS, TISSUES, HURanges

#: Names the method in results, so that numbers from a later method are never mixed up with these.
METHOD = "hu-thresholds+compartments/1"
#: Heights (m) accepted for SMI; outside them the value is taken for a mistake (centimetres?).
HEIGHT_RANGE_M = (0.5, 2.5)


def check_height_m(height_m: float) -> float:
    """``height_m`` as a float if it is a person's height in metres (:data:`HEIGHT_RANGE_M`).

    Raises:
        ValueError: anything else, with a one-line reason.
    """
    low, high = HEIGHT_RANGE_M
    try:
        value = float(height_m)
    except (TypeError, ValueError):
        raise ValueError(f"height must be a number of metres, got {height_m!r}") from None
    if not (math.isfinite(value) and low <= value <= high):
        hint = " (centimetres? give metres, e.g. 1.72)" if high < value <= 300 else ""
        raise ValueError(f"height must be in metres between {low} and {high}, got {height_m}{hint}")
    return value


@dataclass
class BodyComposition:
    """Body composition measured on one axial slice (or the mean over the slices around it).

    Attributes:
        slice_index: the slice measured, 0-based along the volume's axial axis.
        slices_used: the slices whose measurements were averaged (``[slice_index]`` alone
            unless a half-width was asked for).
        pixel_spacing_mm: ``(row spacing, column spacing)`` of ``labels`` in mm.
        labels: uint8 tissue label map of ``slice_index`` on the CT slice's grid (``[j, i]``
            for an axially stored volume): :data:`~l3locator.body_composition.TISSUE_LABELS`,
            0 for anything else.
        areas_cm2: area of each tissue in cm^2 (the mean over ``slices_used``).
        mean_hu: mean HU of each tissue (the mean of the slices' means; None where a tissue has no pixel).
        smi_cm2_per_m2: skeletal muscle index, muscle area / height^2 (cm^2/m^2); None without a height.
        height_m: the height used for the SMI (m), or None.
        method: which method measured (:data:`METHOD`).
        hu_ranges: the HU ranges used.
        warnings: what the measurement noticed (one line each): review those slices.
    """

    slice_index: int
    slices_used: list[int]
    pixel_spacing_mm: tuple[float, float]
    labels: np.ndarray
    areas_cm2: dict[str, float]
    mean_hu: dict[str, float | None]
    smi_cm2_per_m2: float | None
    height_m: float | None
    method: str = METHOD
    hu_ranges: HURanges = field(default_factory=HURanges)
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready facts (no arrays): ``slice_index``, ``slices_used``, ``areas_cm2``,
        ``mean_hu``, ``smi_cm2_per_m2``, ``height_m``, ``method``, ``hu_ranges``, ``warnings``."""
        return {
            "slice_index": self.slice_index,
            "slices_used": list(self.slices_used),
            "areas_cm2": {name: round(area, 2) for name, area in self.areas_cm2.items()},
            "mean_hu": {name: None if hu is None else round(hu, 1) for name, hu in self.mean_hu.items()},
            "smi_cm2_per_m2": None if self.smi_cm2_per_m2 is None else round(self.smi_cm2_per_m2, 2),
            "height_m": self.height_m,
            "method": self.method,
            "hu_ranges": self.hu_ranges.to_dict(),
            "warnings": list(self.warnings),
        }


def measure_labels(hu_slice: np.ndarray, labels: np.ndarray, pixel_spacing_mm: tuple[float, float], *,
                   height_m: float | None = None) -> tuple[dict[str, float], dict[str, float | None], float | None]:
    """Areas, mean HU and SMI of a tissue label map, as segmented or as edited by a person.

    Args:
        hu_slice: the CT slice in HU, 2D.
        labels: tissue labels on the same grid (:data:`~l3locator.body_composition.TISSUE_LABELS`,
            0 for anything else).
        pixel_spacing_mm: ``(row spacing, column spacing)`` in mm.
        height_m: the patient's height in metres, for the SMI.

    Returns:
        ``(areas_cm2, mean_hu, smi_cm2_per_m2)``: ``{tissue: cm^2}``, ``{tissue: HU or None when
        the tissue has no pixel}``, and muscle area / height^2 (cm^2/m^2) or None without a height.

    Raises:
        ValueError: shapes differ, a label is not 0-4, a spacing is not positive, or the height
            is not one (:func:`check_height_m`).
    """
    hu = np.asarray(hu_slice)
    labels = np.asarray(labels)
    if hu.ndim != 2 or hu.shape != labels.shape:
        raise ValueError(f"the slice {hu.shape} and its labels {labels.shape} must be 2D arrays of one shape")
    if labels.size and (labels.min() < 0 or labels.max() > max(TISSUE_LABELS.values())):
        raise ValueError(f"tissue labels must be 0-{max(TISSUE_LABELS.values())}, got {labels.min()}..{labels.max()}")
    row_mm, col_mm = (float(s) for s in pixel_spacing_mm)
    if not (row_mm > 0 and col_mm > 0 and math.isfinite(row_mm * col_mm)):
        raise ValueError(f"pixel spacing must be two positive numbers (mm), got {pixel_spacing_mm}")
    pixel_cm2 = row_mm * col_mm / 100.0
    areas: dict[str, float] = {}
    mean_hu: dict[str, float | None] = {}
    for name in TISSUES:
        pixels = labels == TISSUE_LABELS[name]
        count = int(pixels.sum())
        areas[name] = count * pixel_cm2
        mean_hu[name] = float(hu[pixels].mean(dtype=np.float64)) if count else None
    smi = areas["muscle"] / check_height_m(height_m) ** 2 if height_m is not None else None
    return areas, mean_hu, smi


def axial_slice(volume: CTVolume, index: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Slice ``index`` along the volume's axial axis in stored order, with its
    ``(row spacing, column spacing)`` in mm: ``voxels[index]`` (``[j, i]``, spacings of j and i)
    for an axially stored volume.

    Raises:
        IndexError: ``index`` is not a slice of the volume.
    """
    if not 0 <= index < volume.num_slices:
        raise IndexError(f"slice {index} is outside the volume's {volume.num_slices} slices")
    axial = volume.axial_axis
    in_plane = [axis for axis in (2, 1, 0) if axis != axial]  # voxel axes in array order (voxels are [k, j, i])
    plane = np.take(volume.voxels, index, axis=2 - axial)
    return plane, (volume.spacing[in_plane[0]], volume.spacing[in_plane[1]])


def _height(volume: CTVolume, height_m: float | None, warnings: list[str]) -> float | None:
    """The height for the SMI: ``height_m`` if given (checked), else the scan's Patient's Size
    when it is a plausible height (else a warning and None)."""
    if height_m is not None:
        return check_height_m(height_m)
    recorded = volume.metadata.get("patient_height_m")
    if recorded is None:
        return None
    try:
        return check_height_m(recorded)
    except ValueError as error:
        warnings.append(f"the scan's Patient's Size is not used for the SMI: {error}")
        return None


def measure_body_composition(volume: CTVolume, slice_index: int, *, half_width_mm: float = 0.0, height_m: float | None = None,
                             hu_ranges: HURanges = HURanges()) -> BodyComposition:
    """Segment and measure the tissues on axial slice ``slice_index`` of ``volume``.

    Args:
        volume: the CT (HU).
        slice_index: 0-based along the axial axis (an L3 result's ``l3_slice_index``).
        half_width_mm: when > 0, the areas and mean HU are the mean over the slices whose
            centres lie within +-``half_width_mm`` mm of this one (the label map stays this slice's).
        height_m: the patient's height in metres for the SMI; None: the scan's Patient's Size
            (DICOM tag (0010,1020), ``volume.metadata["patient_height_m"]``) when it has one.
        hu_ranges: the HU range of each tissue.

    Raises:
        IndexError: ``slice_index`` is not a slice of the volume.
        ValueError: ``half_width_mm`` negative or not finite, or ``height_m`` not a height (:func:`check_height_m`).
    """
    if not (math.isfinite(half_width_mm) and half_width_mm >= 0):
        raise ValueError(f"the half-width must be a number of mm >= 0, got {half_width_mm}")
    if not 0 <= slice_index < volume.num_slices:
        raise IndexError(f"slice {slice_index} is outside the volume's {volume.num_slices} slices")
    warnings: list[str] = []
    height = _height(volume, height_m, warnings)
    reach = int(math.floor(half_width_mm / volume.slice_thickness + 1e-9))
    wanted = range(slice_index - reach, slice_index + reach + 1)
    used = [index for index in wanted if 0 <= index < volume.num_slices]
    if len(used) < len(wanted):
        warnings.append(f"only {len(used)} of the {len(wanted)} slices within +-{half_width_mm:g} mm lie in the scan")
    areas_per_slice, hu_per_slice = [], []
    for index in used:
        hu, spacing = axial_slice(volume, index)
        segmentation = segment(hu, spacing, hu_ranges)
        if index == slice_index:
            centre_labels, centre_spacing = segmentation.labels, spacing
            warnings.extend(segmentation.notes)
        areas, mean_hu, _ = measure_labels(hu, segmentation.labels, spacing)
        areas_per_slice.append(areas)
        hu_per_slice.append(mean_hu)
    mean_areas = {name: float(np.mean([areas[name] for areas in areas_per_slice])) for name in TISSUES}
    mean_hu = {}
    for name in TISSUES:
        values = [hus[name] for hus in hu_per_slice if hus[name] is not None]
        mean_hu[name] = float(np.mean(values)) if values else None
    smi = mean_areas["muscle"] / height**2 if height is not None else None
    return BodyComposition(slice_index=slice_index, slices_used=used, pixel_spacing_mm=centre_spacing, labels=centre_labels, areas_cm2=mean_areas,
                           mean_hu=mean_hu, smi_cm2_per_m2=smi, height_m=height, method=METHOD, hu_ranges=hu_ranges, warnings=warnings)


def slice_label_volume(volume: CTVolume, slice_index: int, labels: np.ndarray) -> CTVolume:
    """``labels`` of axial slice ``slice_index`` as a one-slice uint8 volume with that slice's
    geometry (voxel size, directions, RAS position), so that it overlays the CT.

    Raises:
        ValueError: ``labels`` is not the shape of :func:`axial_slice`'s plane.
    """
    plane, _ = axial_slice(volume, slice_index)
    if np.shape(labels) != plane.shape:
        raise ValueError(f"labels of shape {np.shape(labels)} do not fit slice {slice_index} of shape {plane.shape}")
    axial = volume.axial_axis
    to_slice = np.eye(4)
    to_slice[axial, 3] = slice_index  # voxel 0 along the axial axis is the slice
    voxels = np.expand_dims(np.asarray(labels, dtype=np.uint8), axis=2 - axial)
    return CTVolume(voxels, volume.ijk_to_ras @ to_slice, source=f"{volume.source} tissues, slice {slice_index}")
