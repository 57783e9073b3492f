"""File names and atomic, never-overwriting file placement."""

from __future__ import annotations

import os
import re
import shutil
import uuid
from pathlib import Path


def safeFileName(text: str, fallback: str = "case") -> str:
    """``text`` made safe as a file name on every OS: runs of other characters than letters,
    digits, ``.``, ``_`` and ``-`` become ``_``; no leading dot; ``fallback`` if nothing is left."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("_").lstrip(".")
    return name or fallback


def temporaryPathBeside(path: Path) -> Path:
    """An unused hidden file name in ``path``'s folder (not created) that keeps ``path``'s
    suffixes, as writers choose the format from them: e.g. ``.case.nrrd.<uuid>.tmp.nrrd``."""
    suffix = "".join(path.suffixes[-2:]) if path.name.lower().endswith(".nii.gz") else path.suffix
    return path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp{suffix}")


def placeFile(temporary: Path, path: Path, *, overwrite: bool = False) -> Path:
    """Move a finished ``temporary`` file (same folder) to ``path`` in one step.

    Without ``overwrite`` the file appears through a hard link, which fails if ``path`` exists, so
    an existing file (even one created a moment ago by someone else) is never replaced. The
    temporary file is removed in every case.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False.
    """
    try:
        if overwrite:
            os.replace(temporary, path)
        else:
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def copyFileNoOverwrite(source: Path, path: Path) -> Path:
    """Copy ``source`` to ``path`` atomically; raises ``FileExistsError`` if ``path`` exists."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporaryPathBeside(path)
    try:
        shutil.copyfile(source, temporary)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return placeFile(temporary, path)
