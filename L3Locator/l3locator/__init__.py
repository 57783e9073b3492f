"""L3Locator core: find the third lumbar vertebra (L3) slice in a CT volume.

Qt-free and Slicer-free: the Slicer modules, the batch script and the ``l3locator`` command
are thin shells over this package. Start with :func:`find_l3`.
"""

from .errors import InputError, L3LocatorError, LabelError, ModelFileError
from .locate import LocateRule, Localization, locate_l3
from .modelfile import L3Model, load_model
from .pipeline import L3Result, find_l3
from .preprocessing import PreprocessingConfig
from .volume import CTVolume

__version__ = "0.1.0"

__all__ = [
    "CTVolume",
    "InputError",
    "L3LocatorError",
    "L3Model",
    "L3Result",
    "LabelError",
    "LocateRule",
    "Localization",
    "ModelFileError",
    "PreprocessingConfig",
    "find_l3",
    "load_model",
    "locate_l3",
]
