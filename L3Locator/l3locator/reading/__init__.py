"""Load a CT scan from a DICOM folder or file, NIfTI or NRRD into a :class:`~l3locator.volume.CTVolume`.

Every reader returns voxels ``[k, j, i]`` in HU and an ``ijk_to_ras`` matrix in mm, and raises
:class:`~l3locator.errors.InputError` with a one-line message for anything it cannot use.
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InputError
from ..volume import CTVolume
from ._common import check_ct_values
from .dicom import SeriesInfo, list_dicom_series, read_dicom_series, series_uid_of_file
from .nifti import read_nifti
from .nrrd import read_nrrd

__all__ = ["SeriesInfo", "check_ct_values", "list_dicom_series", "load_ct"]

_DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")


def _has_dicom_preamble(path: Path) -> bool:
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def load_ct(path: str | os.PathLike, series_uid: str | None = None) -> CTVolume:
    """Load a CT volume (HU, ``[k, j, i]``, RAS geometry) from ``path``.

    * a folder: a DICOM series in it (``series_uid`` picks one when there are several);
    * a ``.dcm`` file (or any file with a DICOM preamble): the series it belongs to, read from its folder;
    * ``.nii`` / ``.nii.gz``: NIfTI;  ``.nrrd`` / ``.nhdr``: NRRD.

    Raises :class:`InputError` for a missing path, an unsupported format or an unusable scan.
    """
    p = Path(path)
    name = p.name.lower()
    if not p.exists():
        raise InputError(f"no such file or folder: {p}")
    if p.is_dir():
        volume = read_dicom_series(p, series_uid)
    elif name.endswith(_DICOM_SUFFIXES) or _has_dicom_preamble(p):
        uid = series_uid_of_file(p)
        if series_uid is not None and series_uid != uid:
            raise InputError(f"{p} belongs to series {uid}, not to the requested series {series_uid}")
        volume = read_dicom_series(p.parent, uid)
    elif name.endswith((".nii", ".nii.gz", ".nrrd", ".nhdr")):
        if series_uid is not None:
            raise InputError(f"a series UID only applies to DICOM input, not to {p}")
        volume = read_nrrd(p) if name.endswith((".nrrd", ".nhdr")) else read_nifti(p)
    else:
        raise InputError(
            f"unsupported file type: {p} (expected a DICOM folder or file, .nii, .nii.gz, .nrrd or .nhdr)"
        )
    if volume.num_slices < 2:
        raise InputError(f"{p} has {volume.num_slices} axial slice; a CT volume needs at least 2")
    return volume
