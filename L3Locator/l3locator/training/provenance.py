"""The provenance stored in a trained model file (JSON-compatible, see :class:`~l3locator.modelfile.L3Model`)."""

from __future__ import annotations

import platform
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
        data: what it was trained on (counts and case names; see ``cache.data_summary``).
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
        "metrics": metrics or {},
        **extra,
    }
