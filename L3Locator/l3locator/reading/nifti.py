"""Read a CT volume from a NIfTI file (``.nii`` / ``.nii.gz``, NIfTI-1 or -2) with nibabel.

NIfTI's affine already maps voxel indices ``(i, j, k)`` to RAS millimetres; nibabel's array is
indexed ``[i, j, k]`` and is transposed (a view, no copy) to ``[k, j, i]``.

Speed: a ``.nii.gz`` is decompressed in one call, with ISA-L (the ``isal`` package, about 2.5x
faster than zlib: 0.45 s instead of 1.1 s for a 512x512x500 int16 scan) when it is installed.
The header is parsed by nibabel and the voxels are used in place in the file's (decompressed)
bytes: read-only, never copied unless scaling to HU needs it.
"""

from __future__ import annotations

import gzip
import io
import os
import zlib

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

try:  # ISA-L inflate: same output as zlib, several times faster
    from isal.igzip import decompress as _gunzip
except ImportError:  # pragma: no cover - isal has wheels for the platforms we support
    _gunzip = gzip.decompress

from ..errors import InputError
from ..volume import CTVolume
from ._common import check_ct_values, replace_non_finite, rescale_to_hu

#: NIfTI spatial units → millimetres.
_UNIT_TO_MM = {"mm": 1.0, "meter": 1000.0, "micron": 0.001, "unknown": 1.0}


def _squeeze_to_3d(shape: tuple[int, ...], path: str) -> tuple[int, ...]:
    if len(shape) < 3:
        raise InputError(f"{path} is a {len(shape)}D image; a CT volume needs 3 dimensions")
    extra = shape[3:]
    if any(n != 1 for n in extra):
        raise InputError(f"{path} is a {len(shape)}D image of shape {shape}; expected a single 3D CT volume")
    return shape[:3]


def _load_header_and_data(path: str) -> tuple[nib.Nifti1Header, np.ndarray]:
    """The NIfTI header at ``path`` and its voxel array as stored (unscaled, shape as in the header).

    The file is read in one call (a ``.gz`` decompressed in one more), and the array is a
    read-only view of those bytes (no copy).
    """
    with open(path, "rb") as stream:
        data = stream.read()
    if path.lower().endswith(".gz"):
        data = _gunzip(data)
    if len(data) < 4:
        raise InputError(f"{path} is not a NIfTI file (only {len(data)} bytes after decompression)")
    header_size = int.from_bytes(data[:4], "little")
    if header_size not in (348, 540):
        header_size = int.from_bytes(data[:4], "big")
    image_class = {348: nib.Nifti1Image, 540: nib.Nifti2Image}.get(header_size)
    if image_class is None:
        raise InputError(f"{path} is not a NIfTI file (header size {header_size}, expected 348 or 540)")
    header = image_class.header_class.from_fileobj(io.BytesIO(data))
    shape, dtype, offset = header.get_data_shape(), header.get_data_dtype(), int(header.get_data_offset())
    count = int(np.prod(shape, dtype=np.int64))
    if offset + count * dtype.itemsize > len(data):
        raise InputError(f"{path} is truncated: {len(data)} bytes, the header describes {offset + count * dtype.itemsize}")
    return header, np.frombuffer(data, dtype=dtype, count=count, offset=offset).reshape(shape, order="F")


def read_nifti(path: str | os.PathLike) -> CTVolume:
    """Read a NIfTI file as a :class:`CTVolume` in HU (int16 when exact, else float32).

    ``scl_slope``/``scl_inter`` are applied; a 4D file with one volume is squeezed to 3D; real
    4D data raises :class:`InputError`. ``metadata["looks_like_ct"]`` and ``warnings`` report
    a value range unlike CT in HU.
    """
    path = str(path)
    try:
        header, stored = _load_header_and_data(path)
        shape = _squeeze_to_3d(tuple(int(n) for n in stored.shape), path)
        raw = stored.reshape(shape, order="F")
        slope, inter = header.get_slope_inter()
        affine = np.array(header.get_best_affine(), dtype=np.float64)
        unit = header.get_xyzt_units()[0]
    except InputError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, ImageFileError, HeaderDataError) as exc:
        raise InputError(f"cannot read NIfTI file {path}: {exc}") from exc
    if raw.dtype.kind not in "iubf":
        raise InputError(f"{path} holds {raw.dtype} data; expected a scalar CT volume")

    slope = 1.0 if slope is None or not np.isfinite(slope) or slope == 0 else float(slope)
    inter = 0.0 if inter is None or not np.isfinite(inter) else float(inter)
    warnings: list[str] = []
    voxels = replace_non_finite(rescale_to_hu(raw, slope, inter), warnings)
    affine[:3, :] *= _UNIT_TO_MM.get(unit, 1.0)
    metadata = {"format": "nifti", "warnings": warnings}
    check_ct_values(voxels, metadata)
    try:
        return CTVolume(np.ascontiguousarray(voxels.T), affine, source=path, metadata=metadata)
    except ValueError as exc:  # singular affine
        raise InputError(f"{path}: unusable geometry ({exc})") from exc
