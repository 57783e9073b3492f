"""The network and the model file that carries it with its preprocessing and provenance.

A model file is a ``torch.save`` of a plain dict (strings, numbers, lists, dicts and tensors
only), so it loads with ``torch.load(weights_only=True)``: opening a file never runs code.

Keys: ``format`` (``"l3locator-model"``), ``format_version``, ``arch`` (torchvision name),
``num_classes``, ``class_names``, ``preprocessing`` (a :class:`PreprocessingConfig` dict, which
includes the input size and channel mode), ``locate_rule`` (a :class:`LocateRule` dict: how this
model's per-slice probabilities become one answer; optional, the rule's defaults when absent),
``provenance`` (training data summary, design parameters, metrics, dates: JSON-compatible),
``state_dict`` (float32 or float16 tensors).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from .atomic import write_atomically
from .choices import ARCHITECTURES
from .errors import ModelFileError
from .locate import LocateRule
from .models import DEFAULT_MODEL_PATH
from .preprocessing import PreprocessingConfig
from .resnet import empty_resnet

FORMAT = "l3locator-model"
FORMAT_VERSION = 1
CLASS_NAMES = ("not_L3", "L3")


def build_network(arch: str = "resnet50", num_classes: int = len(CLASS_NAMES)) -> torch.nn.Module:
    """A randomly initialised torchvision classifier (no pretrained weights are available).

    torchvision is imported here, on first use: loading a model file does not need it
    (:mod:`l3locator.resnet`).
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {ARCHITECTURES}")
    import torchvision.models

    return getattr(torchvision.models, arch)(weights=None, num_classes=num_classes)


@dataclass
class L3Model:
    """A network ready for inference or further training, with what it needs to be used right."""

    network: torch.nn.Module
    preprocessing: PreprocessingConfig
    arch: str = "resnet50"
    class_names: tuple[str, ...] = CLASS_NAMES
    provenance: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    locate_rule: LocateRule = field(default_factory=LocateRule)

    @classmethod
    def new(cls, arch: str = "resnet50", preprocessing: PreprocessingConfig | None = None) -> L3Model:
        """An untrained model."""
        return cls(build_network(arch), preprocessing or PreprocessingConfig(), arch=arch, source="untrained")

    @property
    def name(self) -> str:
        """Short label for reports: the file name, or how the model was made."""
        return Path(self.source).name if self.source else self.arch

    def save(self, path: str | os.PathLike, *, half: bool = False, overwrite: bool = True) -> Path:
        """Write the model file atomically (temporary file, then rename).

        Args:
            half: store weights as float16 (halves the size; loading converts back to float32).
            overwrite: if False, refuse to replace an existing file.
        """
        path = Path(path)
        try:
            provenance = json.loads(json.dumps(self.provenance))
        except TypeError as exc:
            raise ValueError(f"provenance must be JSON-compatible: {exc}") from exc
        state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().clone() for k, v in self.network.state_dict().items()}
        payload = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "arch": self.arch,
            "num_classes": len(self.class_names),
            "class_names": list(self.class_names),
            "preprocessing": self.preprocessing.to_dict(),
            "locate_rule": self.locate_rule.to_dict(),
            "provenance": provenance,
            "state_dict": state,
        }
        try:
            return write_atomically(path, lambda tmp: torch.save(payload, tmp), overwrite=overwrite)
        except FileExistsError as exc:
            raise FileExistsError(f"{path} exists; not overwriting") from exc


def load_model(path: str | os.PathLike | None = None) -> L3Model:
    """Load a model file safely (``weights_only=True``); ``None`` loads the shipped default.

    Without copies beyond the one float32 conversion: the file is memory-mapped (``mmap=True``),
    each weight is converted once to an owned float32 tensor (the file is not held open
    afterwards), and the network is built empty (:func:`l3locator.resnet.empty_resnet`: no
    random initialisation) and takes those tensors as its own (``assign=True``).

    Raises:
        ModelFileError: the file is missing, unreadable, not an L3Locator model, from a newer
            format version, or its weights do not fit its declared architecture or hold NaN or
            infinite values.
    """
    path = Path(path) if path is not None else DEFAULT_MODEL_PATH
    if not path.is_file():
        hint = " (no default model is shipped in this installation; pass --model)" if path == DEFAULT_MODEL_PATH else ""
        raise ModelFileError(f"model file not found: {path}{hint}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # torch raises many types for corrupt/foreign files
        raise ModelFileError(f"{path}: not a readable L3Locator model file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not an L3Locator model file (missing format marker {FORMAT!r})")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFileError(f"{path}: model format version {version} is newer than this L3Locator supports ({FORMAT_VERSION}); update L3Locator")
    try:
        arch = payload["arch"]
        class_names = tuple(payload["class_names"])
        preprocessing = PreprocessingConfig.from_dict(payload["preprocessing"])
        locate_rule = LocateRule.from_dict(payload.get("locate_rule") or {})
        network = empty_resnet(arch, int(payload["num_classes"]))
        state = {k: v.to(torch.float32 if v.is_floating_point() else v.dtype, copy=True) for k, v in payload["state_dict"].items()}
        network.load_state_dict(state, assign=True)
    except (KeyError, ValueError, TypeError, RuntimeError) as exc:
        raise ModelFileError(f"{path}: incompatible or damaged model file ({type(exc).__name__}: {str(exc).splitlines()[0]})") from exc
    broken = [name for name, tensor in state.items() if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all())]
    if broken:
        more = f" and {len(broken) - 1} more" if len(broken) > 1 else ""
        raise ModelFileError(f"{path}: damaged model file: weights hold NaN or infinite values ({broken[0]}{more})")
    if class_names != CLASS_NAMES:
        raise ModelFileError(f"{path}: expected classes {CLASS_NAMES}, file has {class_names}")
    network.eval()
    return L3Model(network, preprocessing, arch=arch, class_names=class_names, provenance=payload.get("provenance", {}), source=str(path),
                   locate_rule=locate_rule)
