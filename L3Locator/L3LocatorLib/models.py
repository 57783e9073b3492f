"""Where L3Locator model files live, and which ones the model selector offers.

* The shipped default model: ``l3locator/models/default.pt`` inside the core package (found
  without importing the package, which would import torch).
* User models: files ``*.pt`` in :func:`userModelsDirectory`. L3LocatorTraining saves trained
  models there, so the L3Locator module lists them without the user browsing for them.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .files import copyFileNoOverwrite, safeFileName

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


def shippedDefaultModelPath() -> Path | None:
    """Path of the default model shipped with the core package (the same file as
    ``l3locator.modelfile.DEFAULT_MODEL_PATH``), or None when the package is not installed."""
    spec = importlib.util.find_spec("l3locator")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(list(spec.submodule_search_locations)[0]).resolve() / "models" / "default.pt"


def availableModels() -> list[ModelEntry]:
    """The shipped default model (if its file exists), then the user models by name."""
    entries = []
    default = shippedDefaultModelPath()
    if default is not None and default.is_file():
        entries.append(ModelEntry("Default (shipped)", default))
    folder = userModelsDirectory()
    if folder.is_dir():
        for path in sorted(folder.glob(f"*{MODEL_SUFFIX}"), key=lambda p: p.name.lower()):
            if not path.name.startswith("."):
                entries.append(ModelEntry(path.stem, path))
    return entries


def saveUserModel(modelFile: Path, name: str) -> Path:
    """Copy a trained model file into :func:`userModelsDirectory` as ``<name>.pt``.

    Raises:
        FileExistsError: a user model with that name exists (it is never replaced).
    """
    fileName = safeFileName(name, fallback="model")
    if not fileName.endswith(MODEL_SUFFIX):
        fileName += MODEL_SUFFIX
    return copyFileNoOverwrite(Path(modelFile), userModelsDirectory() / fileName)
