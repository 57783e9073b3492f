"""Helpers shared by the readers: input checks, stored values → HU arrays, a CT plausibility check,
and the collection of the libraries' warnings into the volume's ``metadata["warnings"]``."""

from __future__ import annotations

import os
import stat
import warnings as python_warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from ..errors import InputError

_INT16 = np.iinfo(np.int16)

#: A CT in HU has air (about -1000 HU) somewhere; without any value below this the volume is
#: probably not CT in HU (MR and PET are non-negative, unscaled CT starts at 0).
AIR_LIKE_HU = -500.0
#: ... and bone or contrast above this.
DENSE_LIKE_HU = 200.0

_FILE_KINDS = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


def one_line(text: object, limit: int = 200) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def check_regular_file(path: str | os.PathLike) -> None:
    """Raise :class:`InputError` unless ``path`` is a regular file (symbolic links followed).

    Checked with ``stat`` before anything opens the path: opening a FIFO blocks until a writer
    appears, and a device or socket is never a scan.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise InputError(f"cannot access {path}: {exc.strerror or one_line(exc)}") from exc
    if not stat.S_ISREG(mode):
        kind = next((name for test, name in _FILE_KINDS if test(mode)), "not a regular file")
        raise InputError(f"{path} is {kind}, not a scan file; give a DICOM folder or a NIfTI/NRRD/DICOM file")


def check_not_empty(shape: Sequence[int], path: str) -> None:
    """Raise :class:`InputError` when a dimension of ``shape`` (voxels, file order) is 0."""
    if any(int(n) == 0 for n in shape):
        dims = " x ".join(str(int(n)) for n in shape)
        raise InputError(f"{path} holds no voxels: its size is {dims} (a dimension of length 0)")


@contextmanager
def library_warnings_into(warnings: list[str]) -> Iterator[None]:
    """Collect the Python warnings raised inside the block (by nibabel, pydicom, pynrrd...) into ``warnings``.

    They are kept once each, on one line, instead of being printed on stderr, so they reach the
    volume's ``metadata["warnings"]`` and the result. Reading is single-threaded in this project
    (``warnings.catch_warnings`` changes process-wide state).
    """
    with python_warnings.catch_warnings(record=True) as caught:
        python_warnings.simplefilter("always")
        yield
    for message in dict.fromkeys(one_line(w.message) for w in caught):
        if message not in warnings:
            warnings.append(message)


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


def ct_value_problem(lowest: float, highest: float) -> str | None:
    """What makes the value range ``[lowest, highest]`` unlike CT in HU, in words; None when nothing.

    CT in HU holds air (below :data:`AIR_LIKE_HU`) and bone or contrast (above
    :data:`DENSE_LIKE_HU`); the range is named in every answer so a user sees the numbers. A
    non-finite extreme (NaN propagates to the minimum and maximum) is a problem too.
    """
    if not (np.isfinite(lowest) and np.isfinite(highest)):
        return "some voxels are NaN or infinite"
    span = f"values range from {lowest:g} to {highest:g}"
    if lowest == highest:
        return f"every voxel has the value {lowest:g}"
    no_air, no_bone = lowest >= AIR_LIKE_HU, highest <= DENSE_LIKE_HU
    air = f"no air (nothing below {AIR_LIKE_HU:g} HU)"
    bone = f"no bone or contrast (nothing above {DENSE_LIKE_HU:g} HU)"
    if no_air and no_bone:
        return f"{span}: {air} and {bone}"
    if no_air:
        return f"{span}: {air}, as in an MR, a PET or a CT stored without its rescale to HU"
    if no_bone:
        return f"{span}: {bone}"
    return None


def check_ct_values(voxels: np.ndarray, metadata: dict[str, Any]) -> str | None:
    """Judge from the value range whether the volume looks like CT in HU; return the problem or None.

    Sets ``metadata["value_range"]`` (lowest, highest), ``metadata["looks_like_ct"]`` and
    ``metadata["ct_value_problem"]`` (what is wrong, or None), and appends a warning when the
    range does not look like CT. Only the extremes are used, so a crop around the spine (air
    only at the edge) still passes.
    """
    lo, hi = float(voxels.min()), float(voxels.max())
    problem = ct_value_problem(lo, hi)
    metadata["value_range"] = (lo, hi)
    metadata["looks_like_ct"] = problem is None
    metadata["ct_value_problem"] = problem
    if problem:
        metadata.setdefault("warnings", []).append(
            f"{problem}; this may not be a CT in Hounsfield units (an MR, a PET, a label map, or an unscaled or "
            "normalised CT)"
        )
    return problem
