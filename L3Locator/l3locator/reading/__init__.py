"""Load a CT scan from a DICOM folder or file, NIfTI or NRRD into a :class:`~l3locator.volume.CTVolume`.

Every reader returns voxels ``[k, j, i]`` in HU and an ``ijk_to_ras`` matrix in mm, lists what it
noticed in ``metadata["warnings"]``, and raises :class:`~l3locator.errors.InputError` with a
one-line message for anything it cannot use. :func:`check_volume` is the rule every volume
(read here or built in memory) must pass before L3 is searched in it.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..errors import InputError
from ..volume import CTVolume
from ._common import check_ct_values, check_regular_file, one_line
from .checks import check_volume
from .formats import DICOM_FILE_SUFFIXES, has_dicom_preamble, volume_file_stem
from .dicom import SeriesInfo, list_dicom_series, read_dicom_series, series_uid_of_file
from .nifti import read_nifti
from .nrrd import read_nrrd

__all__ = ["SeriesInfo", "check_ct_values", "check_volume", "list_dicom_series", "load_ct"]

def load_ct(path: str | os.PathLike, series_uid: str | None = None) -> CTVolume:
    """Load a CT volume (HU, ``[k, j, i]``, RAS geometry) from ``path``.

    * a folder: a DICOM series in it (``series_uid`` picks one when there are several);
    * a ``.dcm`` file (or any file with a DICOM preamble): the series it belongs to, read from its folder;
    * ``.nii`` / ``.nii.gz``: NIfTI;  ``.nrrd`` / ``.nhdr``: NRRD.

    What the reader noticed on the way (another series in the folder, NaN replaced, a rescale
    assumed, unreadable files skipped...) is listed in ``volume.metadata["warnings"]``.

    Raises :class:`InputError` for a missing or inaccessible path, anything but a folder or a
    regular file (a FIFO, socket or device is refused before it is opened), an unsupported
    format or an unusable scan.
    """
    p = Path(path)
    name = p.name.lower()
    try:
        is_dir = stat.S_ISDIR(os.stat(p).st_mode)
    except FileNotFoundError as exc:
        raise InputError(f"no such file or folder: {p}") from exc
    except OSError as exc:
        raise InputError(f"cannot access {p}: {exc.strerror or one_line(exc)}") from exc
    if is_dir:
        volume = read_dicom_series(p, series_uid)
    else:
        check_regular_file(p)
        volume = _read_file(p, name, series_uid)
    if volume.num_slices < 2:
        raise InputError(f"{p} has {volume.num_slices} axial slice; a CT volume needs at least 2")
    return volume


def _read_file(p: Path, name: str, series_uid: str | None) -> CTVolume:
    """Read the regular file ``p`` (``name``: its lower-case file name) by its format."""
    if name.endswith(DICOM_FILE_SUFFIXES) or has_dicom_preamble(p):
        uid = series_uid_of_file(p)
        if series_uid is not None and series_uid != uid:
            raise InputError(f"{p} belongs to series {uid}, not to the requested series {series_uid}")
        return read_dicom_series(p.parent, uid)
    if volume_file_stem(name) is not None:
        if series_uid is not None:
            raise InputError(f"a series UID only applies to DICOM input, not to {p}")
        return read_nrrd(p) if name.endswith((".nrrd", ".nhdr")) else read_nifti(p)
    raise InputError(f"unsupported file type: {p} (expected a DICOM folder or file, .nii, .nii.gz, .nrrd or .nhdr)")
