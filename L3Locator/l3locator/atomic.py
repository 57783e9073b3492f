"""Atomic file writing: the content goes to a temporary file in the target's folder, then appears
under the target name in one step, so a reader never sees half a file and a crash never leaves one.

Used for everything L3Locator writes that someone relies on: labels, markups, model files, the
training cache and the image writers of :mod:`l3locator.phantoms.writing`. Files get the usual
permissions (``0o666`` minus the process umask), not the owner-only mode of a raw temporary file,
so colleagues sharing a folder can read them.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

_UMASK = os.umask(0)
os.umask(_UMASK)  # reading the umask needs setting it; done once, at import


def write_atomically(path: str | os.PathLike, write: Callable[[str], None], *, overwrite: bool = True,
                     keep_suffixes: bool = False) -> Path:
    """Call ``write(temporary_path)``, flush it to disk, and make it appear at ``path``.

    Args:
        path: the target file (its folder is created if missing).
        write: writes the whole content to the file name it is given.
        overwrite: replace an existing file (a rename); if False, publish with a hard link,
            which fails when ``path`` exists, so an existing file is never replaced, even by a
            concurrent writer.
        keep_suffixes: name the temporary file ``.tmp-<random>.<target name>``, so that it ends
            with the target's suffixes (``.nii.gz``, ``.nrrd``), for writers that choose the
            format from the file name; otherwise it is ``.<target name>.<random>.tmp``.

    Raises:
        FileExistsError: ``path`` exists and ``overwrite`` is False (nothing is changed).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix, suffix = (".tmp-", f".{path.name}") if keep_suffixes else (f".{path.name}.", ".tmp")
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=suffix)
    os.close(fd)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_UMASK)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        if overwrite:
            os.replace(tmp, path)
        else:
            try:
                os.link(tmp, path)
            except FileExistsError:
                raise FileExistsError(f"{path} already exists (pass overwrite=True to replace it)") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path
