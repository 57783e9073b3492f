"""Read a CT series from a folder of single-frame DICOM files (pydicom).

Geometry: DICOM positions are patient LPS millimetres. Slices are ordered by their position along
the slice normal (row cosine × column cosine), never by file name or InstanceNumber, so ``k``
grows along that normal (toward the head for an ordinary axial series). The returned
``ijk_to_ras`` is the LPS matrix with its first two rows negated.

Files: only regular files are opened (a FIFO in the folder would block the read). A file that
starts like DICOM but cannot be read (no permission, damaged or truncated header) is named in
the error when the series turns out incomplete, and in ``metadata["warnings"]`` otherwise.

Values: stored pixels are converted to HU by RescaleSlope and RescaleIntercept. A CT image
without them is refused unless its stored values are HU already (air near -1000 HU in the
slices that lack them), then read with a warning. The HU volume is then judged like every
other format (:func:`~l3locator.reading._common.check_ct_values`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from ..errors import InputError
from ..volume import CTVolume
from ._common import check_ct_values, library_warnings_into, one_line, rescale_to_hu

#: Two cosines agree when they differ by less than this.
_COSINE_TOL = 1e-3
#: Tolerance on slice steps: the larger of 1% of the step and 0.02 mm (positions are often
#: written rounded to 0.01 mm).
_STEP_REL_TOL = 0.01
_STEP_ABS_TOL_MM = 0.02
#: Tolerance on positions off the slice normal (tilt): the larger of 0.1 mm and 0.1 degree over
#: the series' extent. Within it the geometry error of the returned matrix is negligible.
_OFF_NORMAL_TOL_MM = 0.1
_OFF_NORMAL_TOL_RAD = np.radians(0.1)
#: First bytes of a DICOM file written without the 128-byte preamble (group 0002 or 0008 tag).
_NO_PREAMBLE_STARTS = (b"\x02\x00", b"\x08\x00")

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])

#: Stored values count as HU already (rescale tags missing) when at least this fraction of the
#: voxels of the slices without tags lies within AIR_TOLERANCE_HU of air (-1000 HU): an axial
#: CT slice has air around the body, while stored values needing an intercept (typically
#: -1024) put air near 0.
AIR_HU = -1000.0
AIR_TOLERANCE_HU = 100.0
MIN_AIR_FRACTION = 0.01
#: How many unreadable files a message names before it only counts the rest.
_NAMED_FILES = 3


@dataclass(frozen=True)
class SeriesInfo:
    """One image series found in a folder (for choosing among several)."""

    uid: str
    modality: str
    description: str
    num_files: int

    def describe(self) -> str:
        """One line: UID, modality, description and slice count."""
        desc = f" '{self.description}'" if self.description else ""
        return f"{self.uid} ({self.modality or 'no modality'}{desc}, {self.num_files} slices)"


@dataclass
class _Header:
    path: Path
    ds: Dataset


def _open(path: Path, stop_before_pixels: bool) -> Dataset:
    """Read a DICOM file, also one without preamble and file meta (old ACR-NEMA style).

    Raises :class:`InvalidDicomError` for a file that does not start like DICOM.
    """
    try:
        return pydicom.dcmread(path, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        with open(path, "rb") as fh:
            if fh.read(2) not in _NO_PREAMBLE_STARTS:
                raise
    ds = pydicom.dcmread(path, stop_before_pixels=stop_before_pixels, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:  # pixel decoding needs it: use the encoding found
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return ds


class _Unreadable(Exception):
    """A file that looks like DICOM but cannot be read; the message says why (one line)."""


def _is_image_storage(ds: Dataset) -> bool | None:
    """Whether the SOP class (file meta first) is an image storage class; None when there is none."""
    uid = ds.file_meta.get("MediaStorageSOPClassUID") or ds.get("SOPClassUID")
    if not uid:
        return None
    return "Image Storage" in getattr(uid, "name", "")


def _read_header(path: Path) -> Dataset | None:
    """The DICOM header (no pixel data) of an image file, or None for anything else.

    Anything else: not DICOM (README...), a DICOMDIR, or a DICOM object without an image
    (structured report, RT structure set...). Raises :class:`_Unreadable` for a file that starts
    like DICOM but cannot be used: no permission, a parse error, or an image header cut short
    (no SeriesInstanceUID or Rows, with an image SOP class or none at all).
    """
    try:
        ds = _open(path, stop_before_pixels=True)
    except InvalidDicomError:
        return None
    except OSError as exc:
        raise _Unreadable(exc.strerror or one_line(exc, 80)) from exc
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for damaged files
        raise _Unreadable(one_line(exc, 80) or type(exc).__name__) from exc
    if "SeriesInstanceUID" not in ds or "Rows" not in ds:
        if _is_image_storage(ds) is False:
            return None
        raise _Unreadable("incomplete image header (no SeriesInstanceUID or Rows): truncated?")
    try:
        str(ds.SeriesInstanceUID)  # parse it now: a garbled value is reported instead of failing later
    except Exception as exc:  # noqa: BLE001
        raise _Unreadable(f"unreadable SeriesInstanceUID ({one_line(exc, 60)})") from exc
    return ds


@dataclass
class _FolderScan:
    """The image files of a folder grouped by series, and what was skipped."""

    series: dict[str, list[_Header]]
    skipped: int
    unreadable: list[tuple[str, str]]  # (file name, reason)

    def unreadable_note(self) -> str:
        """One phrase naming the first unreadable files and counting the rest ("" when none)."""
        if not self.unreadable:
            return ""
        named = ", ".join(f"{name} ({reason})" for name, reason in self.unreadable[:_NAMED_FILES])
        more = len(self.unreadable) - _NAMED_FILES
        rest = f" and {more} more" if more > 0 else ""
        return f"{len(self.unreadable)} file(s) that look like DICOM could not be read: {named}{rest}"


def _scan_folder(folder: Path) -> _FolderScan:
    """Group the image files of ``folder`` by SeriesInstanceUID; count and name what was skipped.

    Only regular files (symbolic links followed) are opened; hidden files (``.*``: OS debris,
    unfinished writes) are ignored.
    """
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except NotADirectoryError as exc:
        raise InputError(f"not a folder: {folder}") from exc
    except OSError as exc:
        raise InputError(f"cannot list the folder {folder}: {exc.strerror or one_line(exc)}") from exc
    scan = _FolderScan({}, 0, [])
    for entry in entries:
        if not entry.is_file() or entry.name.startswith("."):
            continue
        try:
            ds = _read_header(Path(entry.path))
        except _Unreadable as exc:
            scan.unreadable.append((entry.name, str(exc)))
            ds = None
        if ds is None:
            scan.skipped += 1
            continue
        scan.series.setdefault(str(ds.SeriesInstanceUID), []).append(_Header(Path(entry.path), ds))
    return scan


def _series_info(uid: str, headers: list[_Header]) -> SeriesInfo:
    ds = headers[0].ds
    return SeriesInfo(uid, str(ds.get("Modality", "")), str(ds.get("SeriesDescription", "")), len(headers))


def list_dicom_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """The image series in ``folder`` (not recursive), most slices first.

    pydicom's warnings about odd header values are not shown here; reading the series reports them.
    """
    with library_warnings_into([]):
        scan = _scan_folder(Path(folder))
    infos = [_series_info(uid, headers) for uid, headers in scan.series.items()]
    return sorted(infos, key=lambda s: (-s.num_files, s.uid))


def series_uid_of_file(path: str | os.PathLike) -> str:
    """SeriesInstanceUID of one DICOM file (InputError if it is not a readable DICOM image file)."""
    try:
        with library_warnings_into([]):  # reported when the series is read
            ds = _read_header(Path(path))
    except _Unreadable as exc:
        raise InputError(f"cannot read the DICOM file {path}: {exc}") from exc
    if ds is None:
        raise InputError(f"not a readable DICOM image file: {path}")
    return str(ds.SeriesInstanceUID)


def _choose_series(folder: Path, series: dict[str, list[_Header]], series_uid: str | None) -> str:
    infos = sorted((_series_info(u, h) for u, h in series.items()), key=lambda s: (-s.num_files, s.uid))
    listing = "; ".join(s.describe() for s in infos)
    if series_uid is not None:
        if series_uid not in series:
            raise InputError(f"series {series_uid} is not in {folder}; found: {listing}")
        return series_uid
    if len(infos) == 1:
        return infos[0].uid
    # Prefer CT series: a CT folder often also holds a dose report or a segmentation series.
    candidates = [s for s in infos if s.modality.upper() == "CT"] or infos
    best = [s for s in candidates if s.num_files == candidates[0].num_files]
    if len(best) > 1:
        raise InputError(
            f"{folder} holds {len(best)} series with {best[0].num_files} slices each; choose one by "
            f"its series UID: {'; '.join(s.describe() for s in best)}"
        )
    return best[0].uid


def _floats(ds: Dataset, keyword: str, count: int, path: Path) -> np.ndarray:
    value = ds.get(keyword)
    try:
        arr = np.asarray([float(v) for v in value], dtype=np.float64) if value is not None else None
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.shape != (count,) or not np.all(np.isfinite(arr)):
        raise InputError(f"{path.name}: missing or invalid {keyword} ({value!r})")
    return arr


def _check_series_header(uid: str, headers: list[_Header]) -> None:
    ds0 = headers[0].ds
    modality = str(ds0.get("Modality", "")).upper()
    if modality != "CT":
        raise InputError(f"series {uid} has modality {modality or 'unknown'}, not CT")
    frames = int(ds0.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        raise InputError(
            f"{headers[0].path.name} is a multi-frame (enhanced) DICOM with {frames} frames; "
            "export the series as classic single-frame CT images"
        )
    if len(headers) < 2:
        raise InputError(f"series {uid} has only {len(headers)} slice; a CT volume needs at least 2")
    if int(ds0.get("SamplesPerPixel", 1)) != 1:
        raise InputError(f"series {uid} is not greyscale (SamplesPerPixel = {ds0.SamplesPerPixel})")


def _slice_geometry(headers: list[_Header]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Check that all slices share size, orientation and pixel spacing.

    Returns (ImageOrientationPatient (6,), PixelSpacing (2,) in mm, ImagePositionPatient (n, 3) LPS mm).
    """
    first = headers[0]
    iop = _floats(first.ds, "ImageOrientationPatient", 6, first.path)
    spacing = _floats(first.ds, "PixelSpacing", 2, first.path)
    if np.any(spacing <= 0):
        raise InputError(f"{first.path.name}: PixelSpacing must be positive, got {spacing.tolist()} mm")
    size = (int(first.ds.Rows), int(first.ds.Columns))
    positions = []
    for h in headers:
        if (int(h.ds.Rows), int(h.ds.Columns)) != size:
            raise InputError(
                f"inconsistent image sizes: {h.path.name} is {h.ds.Columns}x{h.ds.Rows}, "
                f"{first.path.name} is {size[1]}x{size[0]} (columns x rows)"
            )
        if np.abs(_floats(h.ds, "ImageOrientationPatient", 6, h.path) - iop).max() > _COSINE_TOL:
            raise InputError(f"inconsistent image orientations: {h.path.name} differs from {first.path.name}")
        if np.abs(_floats(h.ds, "PixelSpacing", 2, h.path) - spacing).max() > _STEP_ABS_TOL_MM:
            raise InputError(f"inconsistent pixel spacing: {h.path.name} differs from {first.path.name}")
        positions.append(_floats(h.ds, "ImagePositionPatient", 3, h.path))
    row_dir, col_dir = iop[:3], iop[3:]
    if abs(np.linalg.norm(np.cross(row_dir, col_dir)) - 1.0) > 1e-2 or abs(row_dir @ col_dir) > 1e-2:
        raise InputError(f"{first.path.name}: ImageOrientationPatient is not two orthogonal unit vectors ({iop})")
    return iop, spacing, np.asarray(positions)


def _check_steps(distance: np.ndarray, headers: list[_Header]) -> None:
    """Raise on duplicated positions, missing slices or uneven steps (``distance`` sorted, mm)."""
    steps = np.diff(distance)
    nominal = float(np.median(steps))
    tol = max(_STEP_ABS_TOL_MM, _STEP_REL_TOL * nominal)
    duplicates = np.flatnonzero(steps < _STEP_ABS_TOL_MM)
    if duplicates.size:
        m = duplicates[0]
        raise InputError(
            f"duplicated slice position {distance[m]:.2f} mm ({headers[m].path.name} and "
            f"{headers[m + 1].path.name}): the series may hold several acquisitions or phases"
        )
    uneven = np.flatnonzero(np.abs(steps - nominal) > tol)
    if uneven.size:
        m = uneven[0]
        where = (f"between slice positions {distance[m]:.2f} and {distance[m + 1]:.2f} mm "
                 f"({headers[m].path.name} and {headers[m + 1].path.name})")
        missing = round(steps[m] / nominal) - 1
        if missing >= 1 and abs(steps[m] - (missing + 1) * nominal) <= tol:
            raise InputError(f"{missing} missing slice(s): a gap of {steps[m]:.2f} mm {where}, "
                             f"expected {nominal:.2f} mm")
        raise InputError(f"non-uniform slice spacing: a step of {steps[m]:.2f} mm {where}, expected {nominal:.2f} mm")


def _gantry_tilt_tag(ds: Dataset) -> float:
    """GantryDetectorTilt in degrees (0 when absent or unreadable)."""
    try:
        return float(ds.get("GantryDetectorTilt") or 0.0)
    except (TypeError, ValueError):
        return 0.0


def _check_tilt(positions: np.ndarray, distance: np.ndarray, normal: np.ndarray, ds: Dataset) -> list[str]:
    """Raise if the positions drift off the slice normal (gantry tilt, shear); return warnings."""
    off_normal = positions - positions[0] - np.outer(distance - distance[0], normal)
    deviation = np.linalg.norm(off_normal, axis=1)
    extent = distance[-1] - distance[0]
    tilt = _gantry_tilt_tag(ds)
    if deviation.max() > max(_OFF_NORMAL_TOL_MM, extent * np.tan(_OFF_NORMAL_TOL_RAD)):
        angle = np.degrees(np.arctan2(deviation[-1], extent))
        tag = f" (GantryDetectorTilt = {tilt:g} degrees)" if tilt else ""
        raise InputError(
            f"the slices are not stacked along their normal: positions drift {deviation.max():.2f} mm sideways "
            f"(about {angle:.1f} degrees), typically a gantry tilt{tag}; resample the series first"
        )
    return [f"GantryDetectorTilt is {tilt:g} degrees but the slice positions are consistent"] if tilt else []


def _geometry(headers: list[_Header]) -> tuple[list[_Header], np.ndarray, list[str]]:
    """Sort the slices along the normal and check them; return (sorted headers, ijk→LPS matrix, warnings)."""
    iop, spacing, positions = _slice_geometry(headers)
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    normal /= np.linalg.norm(normal)
    distance = positions @ normal
    order = np.argsort(distance, kind="stable")
    headers, positions, distance = [headers[i] for i in order], positions[order], distance[order]
    _check_steps(distance, headers)
    warnings = _check_tilt(positions, distance, normal, headers[0].ds)

    lps = np.eye(4)
    lps[:3, 0] = row_dir * spacing[1]  # i: along a row, column to column (PixelSpacing[1])
    lps[:3, 1] = col_dir * spacing[0]  # j: down a column, row to row (PixelSpacing[0])
    lps[:3, 2] = normal * (distance[-1] - distance[0]) / (len(headers) - 1)
    lps[:3, 3] = positions[0]
    return headers, lps, warnings


def _rescale(ds: Dataset, path: Path) -> tuple[float, float] | None:
    """(RescaleSlope, RescaleIntercept) of one file; None when either is absent, empty, or the slope is 0."""
    slope, intercept = ds.get("RescaleSlope"), ds.get("RescaleIntercept")
    if slope in (None, "") or intercept in (None, ""):
        return None
    try:
        slope, intercept = float(slope), float(intercept)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path.name}: invalid RescaleSlope/RescaleIntercept ({slope!r}, {intercept!r})") from exc
    if slope == 0 or not (np.isfinite(slope) and np.isfinite(intercept)):
        raise InputError(f"{path.name}: unusable RescaleSlope/RescaleIntercept ({slope:g}, {intercept:g})")
    return slope, intercept


def _pixels(path: Path) -> tuple[np.ndarray, tuple[float, float] | None]:
    """Stored pixel values of one file, with its (RescaleSlope, RescaleIntercept) or None when absent."""
    try:
        ds = _open(path, stop_before_pixels=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read {path}: {one_line(exc)}") from exc
    if "PixelData" not in ds:
        raise InputError(f"{path} has no pixel data")
    try:
        raw = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for undecodable data
        ts = ds.file_meta.get("TransferSyntaxUID")
        ts_name = getattr(ts, "name", str(ts))
        reason = one_line(exc, 300)
        raise InputError(
            f"cannot decode the pixel data of {path} (transfer syntax {ts_name}): {reason or type(exc).__name__}"
        ) from exc
    return raw, _rescale(ds, path)


def _stored_values_are_hu(voxels: np.ndarray) -> bool:
    """Whether the values hold air near -1000 HU (see :data:`MIN_AIR_FRACTION`)."""
    near_air = (voxels >= AIR_HU - AIR_TOLERANCE_HU) & (voxels <= AIR_HU + AIR_TOLERANCE_HU)
    return np.count_nonzero(near_air) >= MIN_AIR_FRACTION * voxels.size


def _check_missing_rescale(voxels: np.ndarray, headers: list[_Header], missing: list[int], warnings: list[str]) -> None:
    """Accept slices without rescale tags whose stored values are HU already (with a warning), else raise."""
    if not missing:
        return
    which = f"{len(missing)} of {len(headers)} files ({headers[missing[0]].path.name}"
    which += f" and {len(missing) - 1} more)" if len(missing) > 1 else ")"
    slices = voxels[missing]
    lo, hi = float(slices.min()), float(slices.max())
    if not _stored_values_are_hu(slices):
        raise InputError(
            f"{which} have no RescaleSlope/RescaleIntercept, and their stored values ({lo:g} to {hi:g}) "
            f"are not HU already (under {MIN_AIR_FRACTION:.0%} of them near air, {AIR_HU:g} HU): "
            "they cannot be converted to HU; restore the rescale tags"
        )
    warnings.append(
        f"{which} have no RescaleSlope/RescaleIntercept; their stored values ({lo:g} to {hi:g}, air near "
        f"{AIR_HU:g}) were taken as HU"
    )


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> CTVolume:
    """Read one CT series from ``folder`` (not recursive) as a :class:`CTVolume` in HU.

    Hidden files (``.*``) and anything but regular files are ignored; non-DICOM files and DICOM
    objects without an image are skipped and counted in ``metadata["skipped_files"]``, and
    files that look like DICOM but cannot be read are named in ``metadata["unreadable_files"]``
    and in a warning (or in the error, when the series cannot be read). The series is the one
    named by ``series_uid``, else the only one, else the CT series with the most slices. Raises
    :class:`InputError` for non-CT modality, fewer than 2 slices, missing or unevenly spaced
    slices, gantry tilt, inconsistent sizes or orientations, duplicated positions, undecodable
    pixel data and missing rescale tags on values that are not HU already; its message names
    the folder.
    """
    folder = Path(folder)
    warnings: list[str] = []
    with library_warnings_into(warnings):  # pydicom's notes on odd values: into the warnings, not stderr
        scan = _scan_folder(folder)
        try:
            return _read_series(folder, scan, series_uid, warnings)
        except InputError as exc:
            message = str(exc) if str(folder) in str(exc) else f"{folder}: {exc}"
            note = scan.unreadable_note()
            raise InputError(f"{message}; {note}" if note else message) from exc


def _patient_height_m(ds: Dataset) -> float | None:
    """Patient's Size (0010,1020), the height in metres, or None when absent, empty or not a positive number."""
    try:
        height = float(ds.get("PatientSize", None) or "nan")
    except (TypeError, ValueError):
        return None
    return height if np.isfinite(height) and height > 0 else None


def _read_series(folder: Path, scan: _FolderScan, series_uid: str | None, warnings: list[str]) -> CTVolume:
    if not scan.series:
        raise InputError(f"no DICOM image files found in {folder}")
    uid = _choose_series(folder, scan.series, series_uid)
    headers = scan.series[uid]
    _check_series_header(uid, headers)
    headers, lps, geometry_warnings = _geometry(headers)
    warnings.extend(geometry_warnings)

    voxels = None
    missing_rescale: list[int] = []
    for k, h in enumerate(headers):
        raw, rescale = _pixels(h.path)
        if raw.shape != (int(h.ds.Rows), int(h.ds.Columns)):
            raise InputError(f"{h.path.name}: pixel data of shape {raw.shape} does not match Rows x Columns")
        if rescale is None:
            missing_rescale.append(k)
        hu = rescale_to_hu(raw, *(rescale or (1.0, 0.0)))
        if voxels is None:
            voxels = np.empty((len(headers), *hu.shape), dtype=hu.dtype)
        elif hu.dtype != voxels.dtype and voxels.dtype == np.int16:
            voxels = voxels.astype(np.float32)  # a later slice needs float: promote once
        voxels[k] = hu
    _check_missing_rescale(voxels, headers, missing_rescale, warnings)

    ds0 = headers[0].ds
    others = len(scan.series) - 1
    if others:
        warnings.append(f"{folder} holds {others} other series; read {uid}")
    if scan.unreadable:
        warnings.append(scan.unreadable_note())
    metadata = {
        "format": "dicom",
        "modality": str(ds0.get("Modality", "")),
        "series_uid": uid,
        "series_description": str(ds0.get("SeriesDescription", "")),
        "patient_position": str(ds0.get("PatientPosition", "")),
        "patient_height_m": _patient_height_m(ds0),
        "num_files": len(headers),
        "skipped_files": scan.skipped,
        "unreadable_files": [name for name, _ in scan.unreadable],
        "warnings": warnings,
    }
    check_ct_values(voxels, metadata)
    return CTVolume(voxels, LPS_TO_RAS @ lps, source=str(folder), metadata=metadata)
