"""A training case's files in a folder: which files make case ``X``, and replacing them as one unit.

Case ``X`` of a training folder (:mod:`l3locator.training.dataset`) is made of any of:
the CT ``X.nii.gz`` / ``X.nii`` / ``X.nrrd`` / ``X.nhdr`` or a DICOM folder ``X/``; the label
``X.l3.json``; a vertebra label map ``X_vertebrae.nii.gz`` (or ``.nii``, ``.nrrd``, ``.nhdr``);
the corrected tissue segmentation of the L3 slice ``X_tissues.seg.nrrd`` (body composition).
Suffixes compare without regard to letter case, as training reads them (and as a case-insensitive
file system stores them). Any one of these files means the case exists: a new export of ``X``
must not appear beside it, where training would see one case from two sources.

:func:`publishCase` writes a case's new files and puts them in the folder as a unit: either all
of them appear (and the earlier case's files, when replacing, are gone) or none does and the
earlier case is left as it was. A ``.nhdr``'s detached data file is not part of the name rule
and is left in place.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

#: Name of the folder inside a staging folder that holds the replaced case's files until the
#: new ones are in place.
REPLACED_FOLDER = "replaced"


def caseFileSuffixes() -> tuple[str, ...]:
    """What follows ``X`` in the name of a file of case ``X`` (lower case)."""
    from l3locator.labels import LABEL_SUFFIX, TISSUE_SEGMENTATION_SUFFIX, VERTEBRA_MAP_STEM
    from l3locator.reading.formats import VOLUME_FILE_SUFFIXES

    return (
        *VOLUME_FILE_SUFFIXES,
        *(VERTEBRA_MAP_STEM + suffix for suffix in VOLUME_FILE_SUFFIXES),
        TISSUE_SEGMENTATION_SUFFIX,
        LABEL_SUFFIX,
    )


def caseFiles(folder: str | os.PathLike, case: str) -> list[Path]:
    """The files (and DICOM folder) of case ``case`` in ``folder``, sorted by name; [] if none."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    suffixes = {suffix.lower() for suffix in caseFileSuffixes()}
    found = []
    for entry in folder.iterdir():
        name = entry.name
        if entry.is_dir():
            if name == case:
                found.append(entry)
        elif name.startswith(case) and name[len(case) :].lower() in suffixes:
            found.append(entry)
    return sorted(found)


@dataclass(frozen=True)
class PublishedCase:
    """What :func:`publishCase` did: the new files, and the names of the files they replaced."""

    files: list[Path]
    replaced: list[str]


def publishCase(folder: str | os.PathLike, case: str, writeFiles: Callable[[Path], list[Path]], *, replace: bool) -> PublishedCase:
    """Write case ``case``'s files and put them in ``folder`` as one unit.

    1. Unless ``replace``, an existing case of that name (:func:`caseFiles`) is refused before
       anything is written.
    2. ``writeFiles(staging)`` writes every new file, under its final name, into a private
       hidden folder inside ``folder`` (same file system, so publishing is a rename or a link),
       and returns them in the order they are to appear (the label last, so that a reader
       never sees a label without its CT).
    3. The earlier case's files are moved into the staging folder, then each new file is
       hard-linked into ``folder`` (a link never replaces a file, so a file of that name that
       appeared meanwhile is not lost). If any step fails, the new files are removed and the
       earlier ones moved back.
    4. The staging folder goes, with the replaced files in it.

    Raises:
        LabelError: the case exists and ``replace`` is False; or a file of the case appeared
            while exporting (nothing is changed); or the earlier files could not be moved back
            after a failure (the message names the folder that holds them).
        OSError: a file could not be written (nothing is changed).
    """
    from l3locator import LabelError

    folder = Path(folder)
    existing = caseFiles(folder, case)
    if existing and not replace:
        names = ", ".join(path.name for path in existing)
        raise LabelError(f"case {case!r} already exists in {folder} ({names}); choose another case name or allow replacing it")
    folder.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=folder, prefix=f".{case}.export-"))
    keepStaging = False
    try:
        newFiles = writeFiles(staging)
        for path in newFiles:
            _flushToDisk(path)
        current = caseFiles(folder, case)
        if current and not replace:
            raise FileExistsError(current[0])
        published = _swapIn(folder, staging, newFiles, current)
    except _UndoFailed as exc:
        keepStaging = True
        raise LabelError(
            f"exporting {case!r} into {folder} failed and the earlier files could not all be put back; "
            f"they are in {staging / REPLACED_FOLDER}"
        ) from exc.__cause__
    except FileExistsError as exc:
        raise LabelError(f"a file of case {case!r} appeared in {folder} while exporting; nothing was changed") from exc
    finally:
        if not keepStaging:
            shutil.rmtree(staging, ignore_errors=True)
    return PublishedCase(published, [path.name for path in current])


class _UndoFailed(Exception):
    """Putting the earlier files back after a failed swap failed too (the cause says why)."""


def _swapIn(folder: Path, staging: Path, newFiles: list[Path], oldFiles: list[Path]) -> list[Path]:
    """Move ``oldFiles`` into ``staging/replaced`` and link ``newFiles`` into ``folder``; undo on failure."""
    replacedFolder = staging / REPLACED_FOLDER
    replacedFolder.mkdir()
    moved: list[tuple[Path, Path]] = []
    published: list[Path] = []
    try:
        for old in oldFiles:
            kept = replacedFolder / old.name
            os.replace(old, kept)
            moved.append((old, kept))
        for new in newFiles:
            target = folder / new.name
            os.link(new, target)
            published.append(target)
    except BaseException:
        try:
            for target in published:
                target.unlink()
            for old, kept in reversed(moved):
                os.replace(kept, old)
        except OSError as undoError:
            raise _UndoFailed() from undoError
        raise
    return published


def _flushToDisk(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
