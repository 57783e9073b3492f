"""Read a CT volume from a NRRD file (``.nrrd``, or ``.nhdr`` with detached data) with pynrrd.

Geometry comes from ``space`` (the frame, e.g. ``left-posterior-superior``), ``space directions``
(one vector per axis, in that frame, mm) and ``space origin``; it is converted to RAS. pynrrd's
array (``index_order="F"``) is indexed ``[i, j, k]`` and is transposed (a view) to ``[k, j, i]``.
A header without ``space directions`` gives the voxel size by ``spacings``; one without either
is refused rather than read with a guessed 1 mm.
"""

from __future__ import annotations

import os
import zlib

import nrrd
import numpy as np

from ..errors import InputError
from ..volume import CTVolume
from ._common import (
    check_ct_values,
    check_not_empty,
    check_regular_file,
    library_warnings_into,
    one_line,
    replace_non_finite,
    rescale_to_hu,
)

#: Sign that turns each anatomical word of a NRRD ``space`` into RAS (+1: same direction).
_RAS_SIGN = {"right": 1.0, "left": -1.0, "anterior": 1.0, "posterior": -1.0, "superior": 1.0, "inferior": -1.0}
_SPACE_ABBREVIATIONS = {
    "ras": "right-anterior-superior",
    "las": "left-anterior-superior",
    "lps": "left-posterior-superior",
    "rast": "right-anterior-superior-time",
    "last": "left-anterior-superior-time",
    "lpst": "left-posterior-superior-time",
}
_UNIT_TO_MM = {"mm": 1.0, "millimeter": 1.0, "millimeters": 1.0, "cm": 10.0, "m": 1000.0, "um": 0.001}
_SPATIAL_KINDS = {"domain", "space"}


def _space_to_ras(space: str | None, warnings: list[str]) -> np.ndarray:
    """Diagonal signs (3,) mapping vectors in the file's ``space`` to RAS."""
    name = _SPACE_ABBREVIATIONS.get((space or "").lower(), (space or "").lower())
    words = name.split("-")
    if len(words) >= 3 and all(w in _RAS_SIGN for w in words[:3]):
        return np.array([_RAS_SIGN[w] for w in words[:3]])
    warnings.append(f"NRRD space {space!r} is not anatomical; assuming left-posterior-superior (LPS) axes")
    return np.array([-1.0, -1.0, 1.0])


def _spatial_axes(header: dict, ndim: int) -> list[int]:
    directions = header.get("space directions")
    if directions is not None:
        return [a for a in range(ndim) if np.all(np.isfinite(np.asarray(directions[a], dtype=float)))]
    kinds = header.get("kinds")
    if kinds is not None:
        return [a for a in range(ndim) if str(kinds[a]).lower() in _SPATIAL_KINDS]
    return list(range(ndim))


def _detached_data_file(header: dict, path: str) -> str | None:
    """Path of the data file a ``.nhdr`` header names (relative to the header's folder), or None."""
    name = header.get("datafile", header.get("data file"))
    if name is None:
        return None
    return name if os.path.isabs(name) else os.path.join(os.path.dirname(path), name)


def _read_file(path: str, warnings: list[str]) -> tuple[np.ndarray, dict]:
    """Voxels ``[i, j, k, ...]`` and header of the NRRD file at ``path``.

    The sizes are checked before any data is read, and a detached data file must be a regular
    file (a FIFO would block the read).
    """
    try:
        with library_warnings_into(warnings), open(path, "rb") as stream:
            header = nrrd.read_header(stream)
            check_not_empty(header["sizes"], path)
            data_file = _detached_data_file(header, path)
            if data_file is not None:
                check_regular_file(data_file)
            data = nrrd.read_data(header, stream, path, index_order="F")
    except InputError:
        raise
    except (OSError, EOFError, ValueError, KeyError, zlib.error, nrrd.NRRDError) as exc:
        raise InputError(f"cannot read NRRD file {path}: {one_line(exc)}") from exc
    return data, header


def _directions(header: dict, spatial: list[int], path: str, warnings: list[str]) -> np.ndarray:
    """3x3 matrix whose rows are the i, j, k axis vectors in the file's space (mm or its unit)."""
    if header.get("space directions") is not None:
        directions = np.asarray(header["space directions"], dtype=np.float64)[spatial]
        if directions.shape != (3, 3):
            raise InputError(f"{path}: expected 3D space directions, got {directions.tolist()}")
        return directions
    spacings = header.get("spacings")
    spacing = None if spacings is None else np.asarray(spacings, dtype=np.float64)[spatial]
    if spacing is None or not np.all(np.isfinite(spacing)) or np.any(spacing == 0):
        raise InputError(
            f"{path}: the voxel size is unknown (no 'space directions' and 'spacings' {spacings}); "
            "add the voxel spacing to the header"
        )
    warnings.append("no 'space directions' in the header; assuming axes along the scanner axes")
    return np.diag(spacing)


def read_nrrd(path: str | os.PathLike) -> CTVolume:
    """Read a NRRD file as a :class:`CTVolume` in HU (int16 when exact, else float32).

    Non-spatial axes of size 1 are dropped; more than one component or time point, a dimension
    of size 0, or an unknown voxel size raises :class:`InputError`.
    ``metadata["looks_like_ct"]`` and ``warnings`` report a value range unlike CT in HU.
    """
    path = str(path)
    warnings: list[str] = []
    data, header = _read_file(path, warnings)
    if data.dtype.kind not in "iubf":
        raise InputError(f"{path} holds {data.dtype} data; expected a scalar CT volume")

    spatial = _spatial_axes(header, data.ndim)
    others = [a for a in range(data.ndim) if a not in spatial]
    if len(spatial) != 3 or any(data.shape[a] != 1 for a in others):
        raise InputError(f"{path} has shape {data.shape} with {len(spatial)} spatial axes; expected a single 3D volume")
    data = data.squeeze(axis=tuple(others)) if others else data

    signs = _space_to_ras(header.get("space"), warnings)
    directions = _directions(header, spatial, path, warnings)
    origin = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if not np.all(np.isfinite(origin)):
        warnings.append(f"'space origin' {origin.tolist()} is not finite; its unknown coordinates are set to 0 mm")
    units = [str(u).lower() for u in header.get("space units", [])]
    scale = _UNIT_TO_MM.get(units[0], 1.0) if units else 1.0
    if units and units[0] not in _UNIT_TO_MM:
        warnings.append(f"unknown 'space units' {units[0]!r}; assuming millimetres")

    matrix = np.eye(4)
    matrix[:3, :3] = signs[:, None] * directions.T * scale  # columns: i, j, k axis vectors
    matrix[:3, 3] = signs * np.where(np.isfinite(origin), origin, 0.0) * scale

    voxels = replace_non_finite(rescale_to_hu(data), warnings)
    metadata = {"format": "nrrd", "space": header.get("space"), "warnings": warnings}
    check_ct_values(voxels, metadata)
    try:
        return CTVolume(np.ascontiguousarray(voxels.T), matrix, source=path, metadata=metadata)
    except ValueError as exc:  # singular or non-finite matrix
        raise InputError(f"{path}: unusable geometry ({exc})") from exc
