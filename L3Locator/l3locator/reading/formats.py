"""The file formats the readers take, by name and by content: the one list of scan file suffixes.

A scan is a volume file (NIfTI ``.nii``/``.nii.gz``, NRRD ``.nrrd``/``.nhdr``) or a DICOM series
(a folder of DICOM files, or named by one of its files). The runner, case discovery for training
and the Slicer export all recognise scans through these names.
"""

from __future__ import annotations

from pathlib import Path

#: Suffixes of files that hold one whole volume (compared in lower case; longest first).
VOLUME_FILE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")
#: Suffixes of single DICOM files (DICOM files may also have none: see :func:`has_dicom_preamble`).
DICOM_FILE_SUFFIXES = (".dcm", ".dicom", ".ima")


def volume_file_stem(name: str) -> str | None:
    """``name`` without its volume-file suffix (any letter case), or None when it has none."""
    lower = name.lower()
    return next((name[: -len(suffix)] for suffix in VOLUME_FILE_SUFFIXES if lower.endswith(suffix)), None)


def has_dicom_preamble(path: Path) -> bool:
    """Whether the file at ``path`` starts with the DICOM preamble (``DICM`` at byte 128).
    Only call it on regular files: opening a FIFO would block."""
    try:
        with open(path, "rb") as handle:
            handle.seek(128)
            return handle.read(4) == b"DICM"
    except OSError:
        return False


def is_dicom_folder(folder: Path) -> bool:
    """Whether ``folder`` holds DICOM files directly (by suffix, or by the preamble of a regular
    file: a FIFO or device in the folder is never opened)."""
    for path in folder.iterdir():
        if path.name.startswith(".") or not path.is_file():
            continue
        if path.name.lower().endswith(DICOM_FILE_SUFFIXES) or has_dicom_preamble(path):
            return True
    return False
