"""Read a CT series from a folder of single-frame DICOM files (pydicom).

Geometry: DICOM positions are patient LPS millimetres. Slices are ordered by their position along
the slice normal (row cosine × column cosine), never by file name or InstanceNumber, so ``k``
grows along that normal (toward the head for an ordinary axial series). The returned
``ijk_to_ras`` is the LPS matrix with its first two rows negated.
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
from ._common import rescale_to_hu

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


def _read_header(path: Path) -> Dataset | None:
    """The DICOM header (no pixel data) of an image file, or None for anything else.

    Anything else: not DICOM (README...), a DICOMDIR, or a DICOM object without an image
    (structured report, RT structure set...).
    """
    try:
        ds = _open(path, stop_before_pixels=True)
        if "SeriesInstanceUID" not in ds or "Rows" not in ds:
            return None
        str(ds.SeriesInstanceUID)  # parse it now: a garbled value skips the file instead of failing later
    except Exception:  # noqa: BLE001 - any parse failure means "not a DICOM image we can use"
        return None
    return ds


def _scan_folder(folder: Path) -> tuple[dict[str, list[_Header]], int]:
    """Group the image files of ``folder`` by SeriesInstanceUID; also count skipped files."""
    if not folder.is_dir():
        raise InputError(f"not a folder: {folder}")
    series: dict[str, list[_Header]] = {}
    skipped = 0
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if not entry.is_file() or entry.name.startswith("."):  # hidden: OS debris, unfinished writes
            continue
        ds = _read_header(Path(entry.path))
        if ds is None:
            skipped += 1
            continue
        series.setdefault(str(ds.SeriesInstanceUID), []).append(_Header(Path(entry.path), ds))
    return series, skipped


def _series_info(uid: str, headers: list[_Header]) -> SeriesInfo:
    ds = headers[0].ds
    return SeriesInfo(uid, str(ds.get("Modality", "")), str(ds.get("SeriesDescription", "")), len(headers))


def list_dicom_series(folder: str | os.PathLike) -> list[SeriesInfo]:
    """The image series in ``folder`` (not recursive), most slices first."""
    series, _ = _scan_folder(Path(folder))
    infos = [_series_info(uid, headers) for uid, headers in series.items()]
    return sorted(infos, key=lambda s: (-s.num_files, s.uid))


def series_uid_of_file(path: str | os.PathLike) -> str:
    """SeriesInstanceUID of one DICOM file (InputError if it is not a DICOM image file)."""
    ds = _read_header(Path(path))
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
    if arr is None or arr.shape != (count,):
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


def _pixels(path: Path) -> tuple[np.ndarray, float, float]:
    """Stored pixel values of one file, with its RescaleSlope and RescaleIntercept."""
    try:
        ds = _open(path, stop_before_pixels=False)
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot read {path}: {exc}") from exc
    if "PixelData" not in ds:
        raise InputError(f"{path} has no pixel data")
    try:
        raw = ds.pixel_array
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types for undecodable data
        ts = ds.file_meta.get("TransferSyntaxUID")
        ts_name = getattr(ts, "name", str(ts))
        reason = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())[:300]
        raise InputError(
            f"cannot decode the pixel data of {path} (transfer syntax {ts_name}): {reason or type(exc).__name__}"
        ) from exc
    try:
        slope = float(ds.get("RescaleSlope", 1.0) or 1.0)
        intercept = float(ds.get("RescaleIntercept", 0.0) or 0.0)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path.name}: invalid RescaleSlope/RescaleIntercept") from exc
    return raw, slope, intercept


def read_dicom_series(folder: str | os.PathLike, series_uid: str | None = None) -> CTVolume:
    """Read one CT series from ``folder`` (not recursive) as a :class:`CTVolume` in HU.

    Hidden files (``.*``) are ignored; non-DICOM files and DICOM objects without an image are
    skipped and counted in ``metadata["skipped_files"]``. The series is the one named by ``series_uid``, else the only one, else the CT series with the
    most slices. Raises :class:`InputError` for non-CT modality, fewer than 2 slices, missing or
    unevenly spaced slices, gantry tilt, inconsistent sizes or orientations, duplicated positions
    and undecodable pixel data.
    """
    folder = Path(folder)
    series, skipped = _scan_folder(folder)
    if not series:
        raise InputError(f"no DICOM image files found in {folder}")
    uid = _choose_series(folder, series, series_uid)
    headers = series[uid]
    _check_series_header(uid, headers)
    headers, lps, warnings = _geometry(headers)

    voxels = None
    for k, h in enumerate(headers):
        raw, slope, intercept = _pixels(h.path)
        if raw.shape != (int(h.ds.Rows), int(h.ds.Columns)):
            raise InputError(f"{h.path.name}: pixel data of shape {raw.shape} does not match Rows x Columns")
        hu = rescale_to_hu(raw, slope, intercept)
        if voxels is None:
            voxels = np.empty((len(headers), *hu.shape), dtype=hu.dtype)
        elif hu.dtype != voxels.dtype and voxels.dtype == np.int16:
            voxels = voxels.astype(np.float32)  # a later slice needs float: promote once
        voxels[k] = hu

    ds0 = headers[0].ds
    others = len(series) - 1
    if others:
        warnings.append(f"{folder} holds {others} other series; read {uid}")
    metadata = {
        "format": "dicom",
        "modality": str(ds0.get("Modality", "")),
        "series_uid": uid,
        "series_description": str(ds0.get("SeriesDescription", "")),
        "patient_position": str(ds0.get("PatientPosition", "")),
        "num_files": len(headers),
        "skipped_files": skipped,
        "looks_like_ct": True,
        "warnings": warnings,
    }
    return CTVolume(voxels, LPS_TO_RAS @ lps, source=str(folder), metadata=metadata)
