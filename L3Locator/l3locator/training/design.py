"""The paper's seven design parameters, their search space, and what each one means exactly.

=========================  ======================  ==============================================
parameter                  range                   meaning in :func:`~.train.train_model`
=========================  ======================  ==============================================
l2_regularisation          [1e-5, 1e-2], log       SGD ``weight_decay`` (coupled L2, all parameters)
learning_rate              [1e-5, 1e-2], log       SGD learning rate, constant over the run
minibatch_size             16, 32, 48, 64          the DataLoader's ``batch_size``
gradient_threshold         1..6                    clipping threshold (L2 norm)
gradient_threshold_method  l2norm, global-l2norm   see :mod:`.clipping`
oversampling_rate          [0, 0.25]               see :mod:`.sampling`
class_weight               [0, 1]                  see :func:`class_loss_weights`
=========================  ======================  ==============================================

The paper's *control* optimises only the first five with ``oversampling_rate = 0`` and
``class_weight = 0.5`` (equal class weights, the unweighted loss).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from typing import TYPE_CHECKING

import torch

from ..stored_settings import check_known_keys

if TYPE_CHECKING:
    from skopt.space import Categorical, Integer, Real

MINIBATCH_SIZES = (16, 32, 48, 64)
CLIPPING_METHODS = ("l2norm", "global-l2norm")
L2_RANGE = (1e-5, 1e-2)
LEARNING_RATE_RANGE = (1e-5, 1e-2)
GRADIENT_THRESHOLD_RANGE = (1, 6)
OVERSAMPLING_RANGE = (0.0, 0.25)
CLASS_WEIGHT_RANGE = (0.0, 1.0)
#: Class weights are clamped into this interval before use, so neither class ever gets a zero
#: loss weight (w = 0 would make the L3 class invisible to the loss, w = 1 the other class).
CLASS_WEIGHT_CLAMP = (0.01, 0.99)
#: Class weight of the paper's control: both classes weigh the same (the plain loss).
EQUAL_CLASS_WEIGHT = 0.5

#: Names of the parameters the control run optimises (the other two are fixed).
CONTROL_PARAMETERS = ("l2_regularisation", "learning_rate", "minibatch_size", "gradient_threshold", "gradient_threshold_method")


@dataclass(frozen=True)
class DesignParameters:
    """One point of the design space (see the module table for units and meaning)."""

    l2_regularisation: float = 1e-4
    learning_rate: float = 1e-3
    minibatch_size: int = 32
    gradient_threshold: int = 6
    gradient_threshold_method: str = "l2norm"
    oversampling_rate: float = 0.0
    class_weight: float = EQUAL_CLASS_WEIGHT

    def __post_init__(self) -> None:
        problems = []
        if not L2_RANGE[0] <= self.l2_regularisation <= L2_RANGE[1]:
            problems.append(f"l2_regularisation {self.l2_regularisation} outside {L2_RANGE}")
        if not LEARNING_RATE_RANGE[0] <= self.learning_rate <= LEARNING_RATE_RANGE[1]:
            problems.append(f"learning_rate {self.learning_rate} outside {LEARNING_RATE_RANGE}")
        if self.minibatch_size not in MINIBATCH_SIZES:
            problems.append(f"minibatch_size {self.minibatch_size} not one of {MINIBATCH_SIZES}")
        if not GRADIENT_THRESHOLD_RANGE[0] <= self.gradient_threshold <= GRADIENT_THRESHOLD_RANGE[1]:
            problems.append(f"gradient_threshold {self.gradient_threshold} outside {GRADIENT_THRESHOLD_RANGE}")
        if self.gradient_threshold_method not in CLIPPING_METHODS:
            problems.append(f"gradient_threshold_method {self.gradient_threshold_method!r} not one of {CLIPPING_METHODS}")
        if not OVERSAMPLING_RANGE[0] <= self.oversampling_rate <= OVERSAMPLING_RANGE[1]:
            problems.append(f"oversampling_rate {self.oversampling_rate} outside {OVERSAMPLING_RANGE}")
        if not CLASS_WEIGHT_RANGE[0] <= self.class_weight <= CLASS_WEIGHT_RANGE[1]:
            problems.append(f"class_weight {self.class_weight} outside {CLASS_WEIGHT_RANGE}")
        if problems:
            raise ValueError("invalid design parameters: " + "; ".join(problems))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DesignParameters:
        check_known_keys(cls, values, "design parameters")
        return cls(**values)

    def as_control(self) -> DesignParameters:
        """The same hyperparameters with the control's fixed oversampling (0) and class weight (0.5)."""
        return replace(self, oversampling_rate=0.0, class_weight=EQUAL_CLASS_WEIGHT)


#: Fixed design parameters chosen by hand inside the paper's ranges: the shipped model's recipe
#: (``tools/train_default_model.py``) and a ``--quick`` run from random weights.
HAND_PICKED = DesignParameters(
    l2_regularisation=1e-4, learning_rate=5e-3, minibatch_size=32, gradient_threshold=5,
    gradient_threshold_method="global-l2norm", oversampling_rate=0.1, class_weight=0.7,
)


def search_space(control: bool = False) -> list[Integer | Real | Categorical]:
    """The scikit-optimize dimensions, named like the fields of :class:`DesignParameters`.

    Learning rate and L2 are searched log-uniformly; ``control`` leaves out oversampling and
    class weight (fixed at 0 and 0.5).
    """
    from skopt.space import Categorical, Integer, Real  # here: scikit-optimize takes ~0.7 s to import

    dims: list[Integer | Real | Categorical] = [
        Real(*L2_RANGE, prior="log-uniform", name="l2_regularisation"),
        Real(*LEARNING_RATE_RANGE, prior="log-uniform", name="learning_rate"),
        Categorical(list(MINIBATCH_SIZES), name="minibatch_size"),
        Integer(*GRADIENT_THRESHOLD_RANGE, name="gradient_threshold"),
        Categorical(list(CLIPPING_METHODS), name="gradient_threshold_method"),
    ]
    if not control:
        dims += [
            Real(*OVERSAMPLING_RANGE, name="oversampling_rate"),
            Real(*CLASS_WEIGHT_RANGE, name="class_weight"),
        ]
    return dims


def params_from_point(point: list[Any], control: bool = False) -> DesignParameters:
    """A :class:`DesignParameters` from an optimiser point (ordered like :func:`search_space`)."""
    names = [d.name for d in search_space(control)]
    values = {name: _plain(value) for name, value in zip(names, point)}
    params = DesignParameters(**values)
    return params.as_control() if control else params


def point_from_params(params: DesignParameters, control: bool = False) -> list[Any]:
    """The optimiser point (ordered like :func:`search_space`) of ``params``."""
    values = params.to_dict()
    return [values[d.name] for d in search_space(control)]


def _plain(value: Any) -> Any:
    """numpy scalars → Python scalars, so parameters serialise to JSON unchanged."""
    return value.item() if hasattr(value, "item") else value


def class_loss_weights(class_weight: float) -> torch.Tensor:
    """Per-class loss weights ``[not_L3, L3]`` for a class weight ``w`` in [0, 1].

    Definition: ``w`` is the L3 (minority) class's share of the weight, so the two classes weigh
    ``(1 - w, w)`` and their ratio L3 : not_L3 is ``w / (1 - w)``. The pair is scaled by 2 so that
    ``w = 0.5`` gives ``(1, 1)``: exactly the unweighted cross-entropy (the paper's control).
    ``w`` is first clamped to :data:`CLASS_WEIGHT_CLAMP` so neither class vanishes from the loss.

    The training loss of a minibatch of ``B`` slices is ``sum_i c[y_i] * CE_i / B`` (divided by
    the batch size, not by the sum of the weights, so the weight also scales the step size of
    the gradient from each class, as a per-class loss multiplier does).
    """
    w = min(max(float(class_weight), CLASS_WEIGHT_CLAMP[0]), CLASS_WEIGHT_CLAMP[1])
    return torch.tensor([2.0 * (1.0 - w), 2.0 * w], dtype=torch.float32)
