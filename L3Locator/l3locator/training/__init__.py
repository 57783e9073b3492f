"""Training L3Locator models: the paper's imbalance-aware training, Bayesian optimisation of its
seven design parameters, and cross-validation by case.

Modules (one job each): :mod:`.dataset` (find cases and their truth), :mod:`.cache` (preprocessed
slices on disk), :mod:`.splits` (folds by patient), :mod:`.sampling` (what an epoch trains on),
:mod:`.augment` (random affine transforms), :mod:`.design` (the design parameters),
:mod:`.clipping`, :mod:`.bn_statistics`, :mod:`.parent` (the model a run starts from),
:mod:`.train` (one training run), :mod:`.metrics`, :mod:`.optimize` (ask/tell optimisation with
a resumable log), :mod:`.evaluate` (accuracy report), :mod:`.adapt` (fine-tuning defaults,
guard rails, the comparison with the parent), :mod:`.report_plot`, :mod:`.progress`,
:mod:`.provenance`, :mod:`.model_card`, :mod:`.workflow` (the ``train`` command) and :mod:`.cli`.

The names below are imported on first use, so ``import l3locator.training.cli`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DesignParameters": "design",
    "TrainingBudget": "train",
    "train_model": "train",
    "optimise": "optimize",
    "cross_validate": "evaluate",
    "evaluate_model": "evaluate",
    "run_training": "workflow",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
