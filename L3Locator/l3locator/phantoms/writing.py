"""Write a :class:`~l3locator.volume.CTVolume` as NIfTI, NRRD or a DICOM series.

NIfTI is written in RAS (as the volume's matrix), NRRD and DICOM in LPS (as 3D Slicer writes
them); the readers in :mod:`l3locator.reading` convert back. Every file goes through
:func:`l3locator.atomic.write_atomically` (a hidden temporary file in the target folder that keeps
the target's suffixes, then published in one step), so a reader never sees a half-written file.

Writers raise :class:`ValueError` for a volume or path they cannot write and
:class:`FileExistsError` rather than replace an existing file (unless ``overwrite=True``).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import nibabel as nib
import nrrd
import numpy as np
from pydicom.dataset import FileDataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    MRImageStorage,
    SecondaryCaptureImageStorage,
    generate_uid,
)
from pydicom.valuerep import format_number_as_ds

from ..atomic import write_atomically
from ..volume import CTVolume

LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_SOP_CLASS = {"CT": CTImageStorage, "MR": MRImageStorage}
_INT16 = np.iinfo(np.int16)


def _storage_array(voxels: np.ndarray) -> np.ndarray:
    """Voxels in a dtype every NIfTI/NRRD reader handles: int16 (or int32) for integers, floats as they are."""
    if voxels.dtype.kind in "iub":
        lo, hi = int(voxels.min()), int(voxels.max())
        if voxels.dtype == np.int16 or (_INT16.min <= lo and hi <= _INT16.max):
            return voxels.astype(np.int16, copy=False)
        return voxels.astype(np.int32, copy=False)
    return voxels.astype(np.float32, copy=False) if voxels.dtype.itemsize < 4 else voxels


def write_nifti(volume: CTVolume, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``volume`` to a ``.nii`` or ``.nii.gz`` file (affine = ``ijk_to_ras``, mm); return the path."""
    path = Path(path)
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        raise ValueError(f"a NIfTI file name must end with .nii or .nii.gz: {path}")
    img = nib.Nifti1Image(_storage_array(volume.voxels).T, volume.ijk_to_ras)
    img.set_sform(volume.ijk_to_ras, code=1)  # scanner coordinates, as 3D Slicer writes them
    img.set_qform(volume.ijk_to_ras, code=1)
    img.header.set_xyzt_units("mm", "sec")
    return write_atomically(path, lambda tmp: nib.save(img, tmp), overwrite=overwrite, keep_suffixes=True)


def write_nrrd(volume: CTVolume, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``volume`` to a gzip-compressed ``.nrrd`` file in LPS space (mm); return the path."""
    path = Path(path)
    if path.suffix.lower() != ".nrrd":
        raise ValueError(f"a NRRD file name must end with .nrrd (attached data): {path}")
    lps = LPS_TO_RAS @ volume.ijk_to_ras
    header = {
        "space": "left-posterior-superior",
        "space directions": lps[:3, :3].T,  # one row per axis i, j, k
        "space origin": lps[:3, 3],
        "kinds": ["domain", "domain", "domain"],
        "encoding": "gzip",
    }
    data = _storage_array(volume.voxels).T
    return write_atomically(path, lambda tmp: nrrd.write(tmp, data, header, index_order="F"), overwrite=overwrite, keep_suffixes=True)


def _ds(value: float) -> str:
    """A number as a DICOM decimal string (at most 16 characters)."""
    return format_number_as_ds(float(value))


def _rescale_for_int16(voxels: np.ndarray) -> tuple[float, float]:
    """(slope, intercept) so that ``round((v - intercept) / slope)`` fits int16; exact for integers."""
    if not np.all(np.isfinite(voxels)):
        raise ValueError("cannot write a DICOM series with NaN or infinite voxels")
    lo, hi = float(voxels.min()), float(voxels.max())
    integral = voxels.dtype.kind in "iub" or np.array_equal(voxels, np.rint(voxels))
    if integral and hi - lo <= _INT16.max - _INT16.min:
        return 1.0, 0.0 if (lo >= _INT16.min and hi <= _INT16.max) else lo - _INT16.min
    slope = float(_ds((hi - lo) / 65000.0)) if hi > lo else 1.0
    return slope, float(_ds((hi + lo) / 2.0))


def _slice_geometry(volume: CTVolume) -> tuple[list[float], list[float], float, np.ndarray]:
    """(ImageOrientationPatient, PixelSpacing, slice step in mm, ijk→LPS matrix); checks k is the slice axis."""
    lps = LPS_TO_RAS @ volume.ijk_to_ras
    si, sj, sk = volume.spacing
    row_dir, col_dir, k_dir = lps[:3, 0] / si, lps[:3, 1] / sj, lps[:3, 2] / sk
    if abs(row_dir @ col_dir) > 1e-6:
        raise ValueError("the volume's i and j axes are not perpendicular; cannot write DICOM slices")
    if np.linalg.norm(np.cross(np.cross(row_dir, col_dir), k_dir)) > 1e-6:
        raise ValueError("the volume's k axis is not perpendicular to its i-j planes; cannot write DICOM slices")
    return [*row_dir, *col_dir], [sj, si], sk, lps


def write_dicom_series(
    volume: CTVolume,
    folder: str | os.PathLike,
    *,
    series_uid: str | None = None,
    modality: str = "CT",
    series_description: str = "",
    patient_id: str = "PHANTOM",
    start_instance: int = 1,
) -> list[Path]:
    """Write ``volume`` as one single-frame DICOM file per ``k`` slice into ``folder``; return the paths.

    Files are uncompressed explicit VR little endian, signed int16 with RescaleSlope/Intercept
    (exact for integer voxels), with ImagePositionPatient / ImageOrientationPatient (LPS),
    PixelSpacing and SliceThickness taken from ``ijk_to_ras``. The volume's ``k`` axis must be
    perpendicular to its ``i``-``j`` planes. Readers order DICOM slices along i × j (in LPS), so a
    volume whose ``k`` runs the other way (``det(ijk_to_ras) < 0``) is read back with ``k`` reversed,
    every voxel at the same RAS position. Files are named ``<MODALITY>_<series hash>_<instance>.dcm``;
    raises :class:`FileExistsError` if one exists already.
    """
    folder = Path(folder)
    iop, pixel_spacing, thickness, lps = _slice_geometry(volume)
    slope, intercept = _rescale_for_int16(volume.voxels)
    series_uid = series_uid or generate_uid()
    study_uid, frame_uid = generate_uid(), generate_uid()
    sop_class = _SOP_CLASS.get(modality.upper(), SecondaryCaptureImageStorage)
    tag = hashlib.sha1(series_uid.encode()).hexdigest()[:8]
    rows, cols = volume.voxels.shape[1:]

    paths = []
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(volume.voxels.shape[0]):
        instance = start_instance + k
        stored = np.rint((volume.voxels[k].astype(np.float64) - intercept) / slope)
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = sop_class
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds = FileDataset("", {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study_uid, series_uid, frame_uid
        ds.PatientID = ds.PatientName = patient_id
        ds.Modality = modality
        ds.SeriesDescription = series_description
        ds.SeriesNumber = 1
        ds.InstanceNumber = instance
        ds.ImageType = ["DERIVED", "SECONDARY", "AXIAL"]
        ds.ImagePositionPatient = [_ds(v) for v in lps[:3, 3] + k * lps[:3, 2]]
        ds.ImageOrientationPatient = [_ds(v) for v in iop]
        ds.PixelSpacing = [_ds(v) for v in pixel_spacing]
        ds.SliceThickness = _ds(thickness)
        ds.Rows, ds.Columns = rows, cols
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 1
        ds.RescaleIntercept, ds.RescaleSlope = _ds(intercept), _ds(slope)
        if modality.upper() == "CT":
            ds.RescaleType = "HU"
        ds.PixelData = np.clip(stored, _INT16.min, _INT16.max).astype("<i2").tobytes()
        path = folder / f"{modality.upper()}_{tag}_{instance:05d}.dcm"
        paths.append(write_atomically(path, lambda tmp, ds=ds: ds.save_as(tmp, enforce_file_format=True), overwrite=False, keep_suffixes=True))
    return paths
