"""Write a phantom as a training case: the CT and its vertebra label map side by side."""

from __future__ import annotations

import os
from pathlib import Path

from ..volume import CTVolume
from .generate import Phantom


def write_phantom_case(phantom: Phantom, folder: str | os.PathLike, name: str, *, fmt: str = "nifti", overwrite: bool = False) -> dict[str, Path]:
    """Write ``<name>.nii.gz`` (CT, HU) and ``<name>_vertebrae.nii.gz`` (VerSe ids) into ``folder``.

    ``fmt="nrrd"`` writes ``.nrrd`` files instead (LPS, as 3D Slicer). Both files share the CT's
    geometry; each is written to a temporary file and moved into place. Returns
    ``{"ct": path, "vertebrae": path}``; raises :class:`FileExistsError` unless ``overwrite``.
    """
    from .writing import write_nifti, write_nrrd  # imported here: writing pulls in pydicom

    writers = {"nifti": (write_nifti, ".nii.gz"), "nrrd": (write_nrrd, ".nrrd")}
    if fmt not in writers:
        raise ValueError(f"fmt must be one of {sorted(writers)}, got {fmt!r}")
    write, suffix = writers[fmt]
    folder = Path(folder)
    label_volume = CTVolume(phantom.vertebra_labels, phantom.volume.ijk_to_ras, source=f"{phantom.volume.source} vertebrae")
    return {
        "ct": write(phantom.volume, folder / f"{name}{suffix}", overwrite=overwrite),
        "vertebrae": write(label_volume, folder / f"{name}_vertebrae{suffix}", overwrite=overwrite),
    }
