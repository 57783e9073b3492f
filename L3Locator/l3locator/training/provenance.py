"""The provenance stored in a trained model file (JSON-compatible, see :class:`~l3locator.modelfile.L3Model`),
and what it says about the cases the model was made from.

``data`` records the training folder (``folder``, an absolute path), the counts of
:func:`~.dataset.data_summary`, and the case names: ``training_cases`` (the cases the weights
were fitted on) and, for an optimisation trial's model, ``validation_cases`` (the held-out
cases that chose it).

``parent_model`` names the model file the weights started from (``{"name", "sha256"}``, from
the training run's ``initial_weights``), or is null for a model trained from random weights.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import torch

from .. import __version__
from .design import DesignParameters
from .train import TrainingBudget, TrainingResult


def now_iso() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def make_provenance(
    kind: str,
    params: DesignParameters,
    budget: TrainingBudget,
    result: TrainingResult,
    *,
    data: dict[str, Any],
    metrics: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Provenance of a trained model.

    Args:
        kind: ``"best_trial"`` (the optimisation's best model), ``"final"`` (trained on all cases).
        params: its design parameters.
        budget: its training budget (epochs, architecture, preprocessing, sampling, seed...).
        result: the training run (epoch losses, seconds, settings read back from the loop).
        data: what it was trained on (folder, counts and case names; see the module docstring).
        metrics: validation numbers, when there are any.
        extra: anything else worth keeping (trial number, run seed, control flag...).
    """
    return {
        "kind": kind,
        "created": now_iso(),
        "l3locator_version": __version__,
        "torch_version": torch.__version__,
        "machine": platform.platform(),
        "design_parameters": params.to_dict(),
        "budget": budget.to_dict(),
        "training": {
            "epoch_losses": result.epoch_losses,
            "seconds": round(result.seconds, 2),
            "slices_per_second": round(result.slices_per_second, 1),
            "settings": result.settings,
        },
        "data": data,
        "parent_model": parent_of(result),
        "metrics": metrics or {},
        **extra,
    }


def parent_of(result: TrainingResult) -> dict[str, str] | None:
    """``{"name", "sha256"}`` of the model file a training run started from; None from random weights."""
    initial = result.settings.get("initial_weights")
    return {"name": initial["name"], "sha256": initial["sha256"]} if isinstance(initial, dict) else None


@dataclass(frozen=True)
class TrainingCases:
    """The cases a model was made from, as its provenance lists them (names, not paths)."""

    folder: str | None
    trained: frozenset[str]
    validation: frozenset[str]


def training_cases(provenance: dict[str, Any]) -> TrainingCases | None:
    """The cases ``provenance`` says the model was trained (and chosen) on; None when it does not
    list them (a model made by another tool, or by hand)."""
    data = provenance.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("training_cases"), list):
        return None
    folder = data.get("folder")
    return TrainingCases(
        folder=folder if isinstance(folder, str) and folder else None,
        trained=frozenset(str(name) for name in data["training_cases"]),
        validation=frozenset(str(name) for name in data.get("validation_cases") or []),
    )
