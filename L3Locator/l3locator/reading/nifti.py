"""Read a CT volume from a NIfTI file (``.nii`` / ``.nii.gz``, NIfTI-1 or -2) with nibabel.

NIfTI's affine already maps voxel indices ``(i, j, k)`` to RAS millimetres; nibabel's array is
indexed ``[i, j, k]`` and is transposed (a view, no copy) to ``[k, j, i]``.

Speed: a ``.nii.gz`` is decompressed in one call, with ISA-L (the ``isal`` package, about 2.5x
faster than zlib: 0.45 s instead of 1.1 s for a 512x512x500 int16 scan) when it is installed, and
parsed from memory; uncompressed files are read by nibabel directly.
"""

from __future__ import annotations

import gzip
import os
import zlib

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError

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


def _load_image(path: str) -> nib.Nifti1Image | nib.Nifti2Image:
    """The NIfTI image at ``path``, with its data in memory (a ``.gz`` is decompressed in one call)."""
    if not path.lower().endswith(".gz"):
        return nib.load(path, mmap=False)
    with open(path, "rb") as stream:
        data = _gunzip(stream.read())
    if len(data) < 4:
        raise InputError(f"{path} is not a NIfTI file (only {len(data)} bytes after decompression)")
    header_size = int.from_bytes(data[:4], "little")
    if header_size not in (348, 540):
        header_size = int.from_bytes(data[:4], "big")
    image_class = {348: nib.Nifti1Image, 540: nib.Nifti2Image}.get(header_size)
    if image_class is None:
        raise InputError(f"{path} is not a NIfTI file (header size {header_size}, expected 348 or 540)")
    return image_class.from_bytes(data)


def read_nifti(path: str | os.PathLike) -> CTVolume:
    """Read a NIfTI file as a :class:`CTVolume` in HU (int16 when exact, else float32).

    ``scl_slope``/``scl_inter`` are applied; a 4D file with one volume is squeezed to 3D; real
    4D data raises :class:`InputError`. ``metadata["looks_like_ct"]`` and ``warnings`` report
    a value range unlike CT in HU.
    """
    path = str(path)
    try:
        img = _load_image(path)
        shape = _squeeze_to_3d(tuple(int(n) for n in img.shape), path)
        raw = np.asanyarray(img.dataobj.get_unscaled()).reshape(shape, order="F")
        slope, inter = img.dataobj.slope, img.dataobj.inter
        affine = np.array(img.affine, dtype=np.float64)
        unit = img.header.get_xyzt_units()[0]
    except InputError:
        raise
    except (OSError, EOFError, ValueError, zlib.error, gzip.BadGzipFile, ImageFileError) as exc:
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
