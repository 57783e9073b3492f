"""The model a training run starts from (``--init-model``): its file, its identity, its weights.

A run started from a model file (the *parent*) begins with the parent's weights instead of
random ones, and keeps everything those weights only make sense with: the architecture, the
preprocessing (HU window, input size in pixels, channel mode, neighbour offset in mm) and the
locate rule. The parent is named in what the run writes by its file name and the SHA-256 of the
file's bytes (:meth:`ParentModel.identity`), so the provenance says exactly which file it was.

Freezing: a torchvision ResNet has five stages from the input, :data:`RESNET_STAGES`: the stem
(``conv1``, ``bn1``), then ``layer1`` … ``layer4``; the classifier ``fc`` always trains.
:func:`freeze_early_stages` stops the gradients of the first ``n`` stages. Their batch-norm
statistics are still re-estimated on the new data after training (:mod:`.bn_statistics`).
"""

from __future__ import annotations

import copy
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..choices import RESNET_STAGE_NAMES, SHIPPED_MODEL
from ..modelfile import L3Model, load_model
from ..models import DEFAULT_MODEL_PATH

#: The parameter-name prefixes of each ResNet stage (:data:`~l3locator.choices.RESNET_STAGE_NAMES`), from the input.
RESNET_STAGES: tuple[tuple[str, ...], ...] = (("conv1.", "bn1."), ("layer1.",), ("layer2.",), ("layer3.",), ("layer4.",))
MAX_FROZEN_STAGES = len(RESNET_STAGE_NAMES)


@dataclass(frozen=True)
class ParentModel:
    """A model file a run starts from: its path, the SHA-256 of its bytes, and the loaded model."""

    path: Path
    sha256: str
    model: L3Model

    @property
    def name(self) -> str:
        """The file name (``default.pt`` for the shipped model)."""
        return self.path.name

    @property
    def shipped(self) -> bool:
        return self.path == DEFAULT_MODEL_PATH

    def identity(self) -> dict[str, Any]:
        """``{"name", "sha256", "path", "shipped"}``: what provenance and reports record."""
        return {"name": self.name, "sha256": self.sha256, "path": str(self.path), "shipped": self.shipped}

    def copy_network(self) -> torch.nn.Module:
        """An independent copy of the parent's network (float32), to be trained."""
        return copy.deepcopy(self.model.network)


def resolve_init_model(spec: str | os.PathLike) -> Path:
    """The model file ``--init-model`` names: :data:`~l3locator.choices.SHIPPED_MODEL` is the
    shipped model, anything else a path (absolute, resolved)."""
    return DEFAULT_MODEL_PATH if str(spec) == SHIPPED_MODEL else Path(spec).expanduser().resolve()


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_parent(path: str | os.PathLike) -> ParentModel:
    """Load a parent model file (kept in memory while the file is unchanged: every fold and trial
    of a run starts from the same file).

    Raises:
        ModelFileError: the file is missing or not a usable L3Locator model.
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        return _load_parent(resolved, -1, -1)  # load_model raises the one-line "not found" error
    stat = resolved.stat()
    return _load_parent(resolved, stat.st_mtime_ns, stat.st_size)


@functools.lru_cache(maxsize=2)
def _load_parent(path: Path, mtime_ns: int, size: int) -> ParentModel:
    model = load_model(path)
    return ParentModel(path, file_sha256(path), model)


def freeze_early_stages(network: torch.nn.Module, stages: int) -> list[str]:
    """Stop the gradients of the first ``stages`` ResNet stages (0: none, 5: all but ``fc``);
    returns the names of the frozen parameters."""
    if not 0 <= stages <= MAX_FROZEN_STAGES:
        raise ValueError(f"frozen stages must be 0 to {MAX_FROZEN_STAGES}, got {stages}")
    prefixes = tuple(prefix for stage in RESNET_STAGES[:stages] for prefix in stage)
    frozen = []
    for name, parameter in network.named_parameters():
        if prefixes and name.startswith(prefixes):
            parameter.requires_grad_(False)
            frozen.append(name)
    return frozen
