"""L3Locator core: find the third lumbar vertebra (L3) slice in a CT volume.

Qt-free and Slicer-free: the Slicer modules, the batch script and the ``l3locator`` command
are thin shells over this package. Start with :func:`find_l3`.

The names below are imported on first use, so ``import l3locator`` (and ``l3locator --help``,
and a Slicer module listing models) does not import torch.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "CTVolume": "volume",
    "InputError": "errors",
    "L3LocatorError": "errors",
    "L3Model": "modelfile",
    "L3Result": "pipeline",
    "LabelError": "errors",
    "LocateRule": "locate",
    "Localization": "locate",
    "ModelFileError": "errors",
    "PreprocessingConfig": "preprocessing",
    "find_l3": "pipeline",
    "load_model": "modelfile",
    "load_ct": "reading",
    "locate_l3": "locate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
