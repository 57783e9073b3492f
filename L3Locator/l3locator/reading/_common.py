"""Helpers shared by the readers: stored values → HU arrays, and a CT plausibility check."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import InputError

_INT16 = np.iinfo(np.int16)

#: A CT in HU has air (about -1000 HU) somewhere; without any value below this the volume is
#: probably not CT in HU (MR and PET are non-negative, unscaled CT starts at 0).
AIR_LIKE_HU = -500.0
#: ... and bone or contrast above this.
DENSE_LIKE_HU = 200.0


def rescale_to_hu(raw: np.ndarray, slope: float = 1.0, intercept: float = 0.0) -> np.ndarray:
    """Return ``raw * slope + intercept`` as int16 when that is exact, else as float32.

    int16 is used when ``raw`` holds integers, slope and intercept are integers that fit int16,
    and the result's range fits int16. ``raw`` may be modified in place and returned (no copy
    when it is already int16, or float32 on the float path).
    """
    slope, intercept = float(slope), float(intercept)
    identity = slope == 1.0 and intercept == 0.0
    if identity and raw.dtype == np.int16:
        return raw  # HU already: nothing to check or convert
    if raw.dtype.kind in "iub" and slope.is_integer() and intercept.is_integer() and raw.size:
        ends = (float(raw.min()) * slope + intercept, float(raw.max()) * slope + intercept)
        fits = all(_INT16.min <= v <= _INT16.max for v in (*ends, slope, intercept))
        if fits:
            # int16 arithmetic is modular, so a wrapped intermediate still gives the exact result.
            out = raw.astype(np.int16, copy=False)
            if not identity:
                if out is raw and not out.flags.writeable:
                    out = out.copy()
                if slope != 1.0:
                    out *= np.int16(slope)
                if intercept != 0.0:
                    out += np.int16(intercept)
            return out
    out = raw.astype(np.float32, copy=False)
    if not identity:
        if out is raw and not out.flags.writeable:
            out = out.copy()
        if slope != 1.0:
            out *= np.float32(slope)
        if intercept != 0.0:
            out += np.float32(intercept)
    return out


def replace_non_finite(voxels: np.ndarray, warnings: list[str]) -> np.ndarray:
    """Replace NaN/inf by the smallest finite value (in place), noting it in ``warnings``."""
    if voxels.dtype.kind != "f":
        return voxels
    bad = ~np.isfinite(voxels)
    count = int(bad.sum())
    if count == 0:
        return voxels
    if count == voxels.size:
        raise InputError("the volume contains no finite values (all NaN or infinite)")
    fill = float(voxels[~bad].min())
    if not voxels.flags.writeable:
        voxels = voxels.copy()
    voxels[bad] = fill
    warnings.append(f"{count} NaN/infinite voxels replaced by the minimum value {fill:g}")
    return voxels


def check_ct_values(voxels: np.ndarray, metadata: dict[str, Any]) -> None:
    """Judge from the value range whether the volume looks like CT in HU (formats without Modality).

    Sets ``metadata["looks_like_ct"]`` and ``metadata["value_range"]`` and appends a warning
    when the range does not look like CT. Only the extremes are used, so a crop around the spine
    (air only at the edge) still passes.
    """
    lo, hi = float(voxels.min()), float(voxels.max())
    metadata["value_range"] = (lo, hi)
    problems = []
    if lo >= AIR_LIKE_HU:
        problems.append(f"no air-like values below {AIR_LIKE_HU:g}")
    if hi <= DENSE_LIKE_HU:
        problems.append(f"no bone-like values above {DENSE_LIKE_HU:g}")
    metadata["looks_like_ct"] = not problems
    if problems:
        metadata.setdefault("warnings", []).append(
            f"values range from {lo:g} to {hi:g} ({' and '.join(problems)}): this may not be a CT in "
            "Hounsfield units (MR, PET, or an unscaled/normalised CT)"
        )
