"""Training L3Locator models: the paper's imbalance-aware training, Bayesian optimisation of its
seven design parameters, and cross-validation by case.

Modules (one job each): :mod:`.dataset` (find cases and their truth), :mod:`.cache` (preprocessed
slices on disk), :mod:`.splits` (folds by patient), :mod:`.sampling` (what an epoch trains on),
:mod:`.augment` (random affine transforms), :mod:`.design` (the design parameters),
:mod:`.clipping`, :mod:`.train` (one training run), :mod:`.metrics`, :mod:`.optimize`
(ask/tell optimisation with a resumable log), :mod:`.evaluate` (accuracy report),
:mod:`.report_plot`, :mod:`.progress`, :mod:`.workflow` (the ``train`` command) and :mod:`.cli`.
"""

from .design import DesignParameters
from .evaluate import cross_validate, evaluate_model
from .optimize import optimise
from .train import TrainingBudget, train_model
from .workflow import run_training

__all__ = ["DesignParameters", "TrainingBudget", "cross_validate", "evaluate_model", "optimise", "run_training", "train_model"]
