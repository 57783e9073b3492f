"""Model files: which ones the model selector offers, where trained ones are kept, and the one in memory.

* The shipped default model: :data:`l3locator.models.DEFAULT_MODEL_PATH` (found without
  importing torch).
* User models: files ``*.pt`` in :func:`userModelsDirectory`. L3LocatorTraining saves trained
  models there, so the L3Locator module lists them without the user browsing for them.
* :class:`ModelCache`: the last model loaded, reused while its file is unchanged.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from l3locator.models import DEFAULT_MODEL_PATH

from .files import safeFileName

if TYPE_CHECKING:
    from l3locator import L3Model

#: Environment variable that overrides the user models folder (tests, shared lab installs).
MODELS_DIRECTORY_ENVIRONMENT_VARIABLE = "L3LOCATOR_MODELS_DIR"
MODEL_SUFFIX = ".pt"


@dataclass(frozen=True)
class ModelEntry:
    """One choice of the model selector: a label for people and the file it stands for."""

    label: str
    path: Path


def userModelsDirectory() -> Path:
    """The per-user folder of trained models (it may not exist yet).

    ``$L3LOCATOR_MODELS_DIR`` if set, else the platform's per-user data folder:
    ``%LOCALAPPDATA%/L3Locator/models`` on Windows, ``~/Library/Application Support/L3Locator/models``
    on macOS, ``$XDG_DATA_HOME/L3Locator/models`` (default ``~/.local/share``) elsewhere.
    """
    override = os.environ.get(MODELS_DIRECTORY_ENVIRONMENT_VARIABLE)
    if override:
        return Path(override).expanduser()
    if sys.platform.startswith("win"):
        base = Path(os.environ.get("LOCALAPPDATA") or Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Application Support"
    else:
        base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share")
    return base / "L3Locator" / "models"


def availableModels() -> list[ModelEntry]:
    """The shipped default model (if its file exists), then the user models by name."""
    entries = []
    if DEFAULT_MODEL_PATH.is_file():
        entries.append(ModelEntry("Default (shipped)", DEFAULT_MODEL_PATH))
    folder = userModelsDirectory()
    if folder.is_dir():
        for path in sorted(folder.glob(f"*{MODEL_SUFFIX}"), key=lambda p: p.name.lower()):
            if not path.name.startswith("."):
                entries.append(ModelEntry(path.stem, path))
    return entries


def saveUserModel(modelFile: Path, name: str) -> Path:
    """Copy a trained model file into :func:`userModelsDirectory` as ``<name>.pt`` (atomically).

    Raises:
        FileExistsError: a user model with that name exists (it is never replaced).
    """
    from l3locator.atomic import write_atomically

    fileName = safeFileName(name, fallback="model")
    if not fileName.endswith(MODEL_SUFFIX):
        fileName += MODEL_SUFFIX
    path = userModelsDirectory() / fileName
    return write_atomically(path, lambda temporary: shutil.copyfile(modelFile, temporary), overwrite=False)


class ModelCache:
    """The last model loaded, reused while its file (path and modification time) is unchanged;
    one model in memory at a time."""

    def __init__(self) -> None:
        self._key: tuple[str, float] | None = None
        self._model: L3Model | None = None

    def load(self, modelPath: str | Path | None = None) -> L3Model:
        """The model in ``modelPath`` (None or "" = the shipped default).

        Raises:
            l3locator.ModelFileError: missing, corrupt or incompatible model file.
        """
        from l3locator import load_model

        path = Path(modelPath) if modelPath else DEFAULT_MODEL_PATH
        key = (str(path.resolve()), path.stat().st_mtime if path.is_file() else -1.0)
        if self._key != key:
            self._model, self._key = None, None  # the old model is released before the new one is read
            self._model = load_model(path)
            self._key = key
        return self._model
