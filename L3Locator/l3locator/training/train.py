"""One training run: a network trained with one set of design parameters, from random weights or
from a model file's (``TrainingBudget.init_model``, the *parent*: :mod:`.parent`).

The loop, per epoch: draw the epoch (:func:`~.sampling.plan_epoch`: all L3 slices, subsampled
non-L3 slices, oversampled L3 copies); serve it in minibatches of ``minibatch_size`` (a
``DataLoader``); augment (:mod:`.augment`, by ``TrainingBudget.augmentation``); forward; class-weighted
cross-entropy (:func:`~.design.class_loss_weights`); backward; clip the gradients
(:mod:`.clipping`); step. After the last epoch the batch-norm statistics are re-estimated over
the training slices with the final weights (:mod:`.bn_statistics`, MATLAB's default).

Starting from a parent: the network is a copy of the parent's (its architecture and
preprocessing must be the budget's), the first ``freeze_layers`` ResNet stages get no gradient
(:func:`~.parent.freeze_early_stages`), the trained model keeps the parent's locate rule, and the
batch-norm statistics of every layer, frozen or not, are re-estimated on the new training slices
(what adapts a network to another scanner's intensities and noise without any gradient).

Optimiser: SGD with momentum 0.9, the paper's MATLAB ``sgdm`` solver, with the learning rate
held constant and the L2 regularisation as ``weight_decay`` (coupled L2 on every parameter,
added after clipping). A last minibatch of a single slice is skipped (batch normalisation
cannot normalise one sample).

Speed: ``channels_last`` memory format always; mixed precision by ``TrainingBudget.precision``:
``"auto"`` is bf16 autocast on CUDA GPUs that support it (else fp16 with a gradient scaler), bf16
autocast on CPUs with native bf16 (measured about 2x faster than fp32 on an AVX512-BF16 CPU),
else fp32. Master weights stay float32 and validation is scored in float32 (like inference).

Reproducibility: the seed fixes the initial weights, every epoch's draw and order, and the
augmentation; on the same machine and thread count two runs give identical losses. On CUDA,
cuDNN is set to deterministic algorithms for the duration of the run.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..choices import ARCHITECTURES, AUGMENTATIONS, TRAINING_PRECISIONS
from ..engine import ScanSlices, SliceClassifier, native_bf16, pick_device, score_slices
from ..locate import LocateRule
from ..modelfile import L3Model, build_network
from ..preprocessing import PreprocessingConfig
from ..stored_settings import check_known_keys
from .augment import augment_samples
from .bn_statistics import estimate_population_statistics
from .cache import PreparedCase
from .clipping import clip_gradients
from .design import DesignParameters, class_loss_weights
from .metrics import SliceCounts, slice_counts
from .parent import MAX_FROZEN_STAGES, ParentModel, freeze_early_stages, load_parent
from .sampling import EpochDataset, EpochPlan, near_l3_slices, plan_epoch

SGD_MOMENTUM = 0.9



@dataclass(frozen=True)
class TrainingBudget:
    """What a run may spend, and on what (everything except the design parameters).

    Attributes:
        epochs: passes over the (drawn) training set per training run.
        arch: ``"resnet50"`` (the paper) or ``"resnet18"`` (quick runs).
        preprocessing: the shared preprocessing; sets the input size (pixels) and channel mode.
        negatives_per_epoch: fraction of the non-L3 slices drawn afresh each epoch (1 = all).
        max_slices_per_epoch: cap on the slices drawn per epoch before oversampling (None = no cap).
        device: ``"cpu"``, ``"cuda"``... (None: CUDA when present).
        precision: one of :data:`~l3locator.choices.TRAINING_PRECISIONS` (see the module docstring).
        seed: base seed of the run; trials and folds derive theirs from it.
        eval_batch_size: slices per forward pass when scoring validation cases.
        bn_statistics_slices: training slices drawn to re-estimate the batch-norm statistics
            after training (None: all of them).
        augmentation: one of :data:`AUGMENTATIONS`.
        init_model: the model file training starts from (absolute path; None: random weights).
        freeze_layers: ResNet stages kept frozen from the input (0-5; needs ``init_model``).
        near_l3_mm: with ``near_l3_share``, the non-L3 slices within this distance (mm, along
            the axial axis) of a case's L3 count as L3's neighbours (L2 and L4 at 40 mm).
        near_l3_share: share of each epoch's non-L3 slices drawn from L3's neighbours (0: drawn
            like any other slice; :func:`~.sampling.plan_epoch`).
        edge_cut_rate: share of the samples served as if their scan ended between the slice
            and its 2.5D neighbour (:mod:`.sampling`, "scan-edge cuts"; 0: the paper's inputs).
        neighbor_offset_jitter_mm: each sample's 2.5D neighbour offset shifted by up to this many
            mm either way (:mod:`.sampling`, "neighbour-offset jitter"; 0: the preprocessing's
            offset for every sample, as at inference).
    """

    epochs: int = 30
    arch: str = "resnet50"
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    negatives_per_epoch: float = 1.0
    max_slices_per_epoch: int | None = None
    device: str | None = None
    precision: str = "auto"
    seed: int = 0
    eval_batch_size: int = 64
    bn_statistics_slices: int | None = None
    augmentation: str = "paper"
    init_model: str | None = None
    freeze_layers: int = 0
    near_l3_mm: float = 40.0
    near_l3_share: float = 0.0
    edge_cut_rate: float = 0.0
    neighbor_offset_jitter_mm: float = 0.0

    def __post_init__(self) -> None:
        if self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.arch not in ARCHITECTURES:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {ARCHITECTURES}")
        if not 0.0 < self.negatives_per_epoch <= 1.0:
            raise ValueError("negatives_per_epoch must be in (0, 1]")
        if self.max_slices_per_epoch is not None and self.max_slices_per_epoch < 2:
            raise ValueError("max_slices_per_epoch must be at least 2")
        if self.precision not in TRAINING_PRECISIONS:
            raise ValueError(f"precision must be one of {TRAINING_PRECISIONS}")
        if self.bn_statistics_slices is not None and self.bn_statistics_slices < 2:
            raise ValueError("bn_statistics_slices must be at least 2")
        if self.augmentation not in AUGMENTATIONS:
            raise ValueError(f"augmentation must be one of {AUGMENTATIONS}")
        if not 0 <= self.freeze_layers <= MAX_FROZEN_STAGES:
            raise ValueError(f"freeze_layers must be 0 to {MAX_FROZEN_STAGES} (ResNet stages from the input)")
        if self.freeze_layers and not self.init_model:
            raise ValueError("freezing layers needs a model to start from (init_model): random layers would stay random")
        if not 0.0 <= self.near_l3_share <= 1.0:
            raise ValueError("near_l3_share must be in [0, 1]")
        if self.near_l3_share > 0 and self.near_l3_mm <= 0:
            raise ValueError("near_l3_mm must be positive when near_l3_share is set")
        if not 0.0 <= self.edge_cut_rate <= 1.0:
            raise ValueError("edge_cut_rate must be in [0, 1]")
        if self.neighbor_offset_jitter_mm:
            if self.preprocessing.channel_mode != "neighbors":
                raise ValueError("neighbor_offset_jitter_mm needs 2.5D channels (channel_mode 'neighbors')")
            if not 0.0 < self.neighbor_offset_jitter_mm < self.preprocessing.neighbor_offset_mm:
                raise ValueError("neighbor_offset_jitter_mm must be positive and smaller than the neighbour offset")

    @classmethod
    def small(cls, **overrides: Any) -> TrainingBudget:
        """The documented small configuration: CPU, minutes, for tests and demos.

        ResNet18 at 64 x 64 pixels, 2 epochs, a quarter of the non-L3 slices per epoch, at most
        600 slices per epoch, batch-norm statistics from at most 2000 training slices, CPU.
        Measured on the 2-core development machine (one thread, bf16, other jobs running):
        about 140 training slices/s; ``l3locator train DIR --small --trials 3 --folds 2`` on 6
        abdomen phantoms (1,381 slices) took 72 s in all (3 trials, 2 folds, the final model).
        The full size (ResNet50 at 224 px) trains at about 8 slices/s on one such core.
        """
        values: dict[str, Any] = {
            "epochs": 2,
            "arch": "resnet18",
            "preprocessing": PreprocessingConfig(input_size=64),
            "negatives_per_epoch": 0.25,
            "max_slices_per_epoch": 600,
            "bn_statistics_slices": 2000,
            "device": "cpu",
        }
        values.update(overrides)
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["preprocessing"] = self.preprocessing.to_dict()
        return values

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainingBudget:
        check_known_keys(cls, values, "training budget settings")
        values = dict(values)
        if isinstance(values.get("preprocessing"), dict):
            values["preprocessing"] = PreprocessingConfig.from_dict(values["preprocessing"])
        return cls(**values)

    def with_seed(self, seed: int) -> TrainingBudget:
        return replace(self, seed=seed)


@dataclass
class EpochStats:
    """What one epoch trained on, and its mean loss."""

    samples: int
    l3_samples: int
    augmented: int
    loss: float
    seconds: float


@dataclass
class TrainingResult:
    """A trained model and how it got there.

    ``settings`` are read back from the objects the loop used (the ``DataLoader``'s batch size,
    the optimiser's learning rate, momentum and weight decay, the clipping settings, the loss
    weights, the precision), so a test can check each design parameter reached the loop.
    """

    model: L3Model
    epochs: list[EpochStats]
    seconds: float
    settings: dict[str, Any]

    @property
    def epoch_losses(self) -> list[float]:
        return [e.loss for e in self.epochs]

    @property
    def slices_per_second(self) -> float:
        seen = sum(e.samples for e in self.epochs)
        busy = sum(e.seconds for e in self.epochs)
        return seen / busy if busy > 0 else 0.0


def resolve_training_precision(precision: str, device: torch.device) -> str:
    """The precision ``"auto"`` stands for on ``device`` (others are returned as given)."""
    if precision not in TRAINING_PRECISIONS:
        raise ValueError(f"precision must be one of {TRAINING_PRECISIONS}")
    if precision == "fp16" and device.type != "cuda":
        raise ValueError("fp16 mixed precision needs a CUDA device; use bf16 or fp32 on the CPU")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if native_bf16(device) else "fp16"
    return "bf16" if native_bf16(device) else "fp32"


@contextlib.contextmanager
def _deterministic_cudnn(device: torch.device) -> Iterator[None]:
    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def make_optimiser(network: torch.nn.Module, params: DesignParameters) -> torch.optim.SGD:
    """SGD with momentum 0.9, learning rate and weight decay (= L2 regularisation) from
    ``params``, over the parameters that are not frozen."""
    trainable = [p for p in network.parameters() if p.requires_grad]
    return torch.optim.SGD(trainable, lr=params.learning_rate, momentum=SGD_MOMENTUM, weight_decay=params.l2_regularisation)


def starting_parent(budget: TrainingBudget) -> ParentModel | None:
    """The parent a run with ``budget`` starts from (None: random weights).

    Raises:
        ValueError: the parent's architecture or preprocessing is not the budget's.
        ModelFileError: the file cannot be loaded.
    """
    if not budget.init_model:
        return None
    parent = load_parent(budget.init_model)
    if parent.model.arch != budget.arch or parent.model.preprocessing != budget.preprocessing:
        raise ValueError(
            f"{parent.name} is a {parent.model.arch} with {parent.model.preprocessing}; the budget asks for a {budget.arch} "
            f"with {budget.preprocessing}: a run from a model keeps the model's network and preprocessing"
        )
    return parent


def make_loader(
    cases: Sequence[PreparedCase], plan: EpochPlan, config: PreprocessingConfig, minibatch_size: int, *, pin_memory: bool = False
) -> torch.utils.data.DataLoader:
    """Minibatches of ``minibatch_size`` in the plan's (already shuffled) order."""
    return torch.utils.data.DataLoader(
        EpochDataset(cases, plan, config), batch_size=minibatch_size, shuffle=False, num_workers=0, pin_memory=pin_memory
    )


def weighted_loss(logits: torch.Tensor, labels: torch.Tensor, class_weights: torch.Tensor) -> torch.Tensor:
    """``sum_i c[y_i] * CE_i / B``: class-weighted cross-entropy averaged over the batch size."""
    per_slice = F.cross_entropy(logits.float(), labels, reduction="none")
    return (per_slice * class_weights[labels]).sum() / len(labels)


def train_model(
    cases: Sequence[PreparedCase],
    params: DesignParameters,
    budget: TrainingBudget,
    *,
    on_epoch: Callable[[int, float], None] | None = None,
    checkpoint: Callable[[int, torch.nn.Module], None] | None = None,
) -> TrainingResult:
    """Train a new network of ``budget.arch`` on ``cases`` for ``budget.epochs`` epochs.

    Args:
        cases: training cases (their cached slices are read as needed).
        params: the design parameters (see :mod:`.design`).
        budget: epochs, architecture, preprocessing, sampling, device, precision, seed, and the
            model to start from (see the module docstring).
        on_epoch: called as ``on_epoch(epoch_number, mean_loss)`` after each epoch (from 1).
        checkpoint: called as ``checkpoint(epoch_number, network)`` after each epoch, to save the
            weights of a long run (the batch-norm population statistics are not yet re-estimated).
    """
    if not cases:
        raise ValueError("no training cases")
    started = time.perf_counter()
    device = pick_device(budget.device)
    precision = resolve_training_precision(budget.precision, device)
    autocast_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    rng = np.random.default_rng(budget.seed)
    augment_generator = torch.Generator().manual_seed(budget.seed)
    parent = starting_parent(budget)
    if parent is not None:
        network = parent.copy_network()
    else:
        with torch.random.fork_rng(devices=[]):  # seeded initial weights, global RNG left as it was
            torch.manual_seed(budget.seed)
            network = build_network(budget.arch)
    frozen = freeze_early_stages(network, budget.freeze_layers)
    network = network.to(device, memory_format=torch.channels_last)
    optimiser = make_optimiser(network, params)
    class_weights = class_loss_weights(params.class_weight).to(device)
    scaler = torch.amp.GradScaler("cuda") if precision == "fp16" else None
    targets = [case.targets() for case in cases]
    near = [near_l3_slices(t, case.slice_thickness_mm, budget.near_l3_mm) for t, case in zip(targets, cases)] if budget.near_l3_share else None
    history: list[EpochStats] = []
    loader_batch_size = None

    with _deterministic_cudnn(device):
        for epoch in range(1, budget.epochs + 1):
            epoch_started = time.perf_counter()
            plan = plan_epoch(
                targets, rng,
                negatives_fraction=budget.negatives_per_epoch,
                max_slices=budget.max_slices_per_epoch,
                oversampling_rate=params.oversampling_rate,
                near=near,
                near_share=budget.near_l3_share,
                edge_cut_rate=budget.edge_cut_rate,
                offset_jitter_mm=budget.neighbor_offset_jitter_mm,
            )
            loader = make_loader(cases, plan, budget.preprocessing, params.minibatch_size, pin_memory=device.type == "cuda")
            loader_batch_size = loader.batch_size
            network.train()
            loss_sum = torch.zeros((), device=device)
            trained = 0
            for inputs, labels, augment in loader:
                if len(labels) < 2:
                    continue
                inputs = inputs.to(device, non_blocking=True)
                labels = labels.to(device, non_blocking=True)
                inputs = augment_samples(inputs, augment, budget.augmentation, augment_generator)
                inputs = inputs.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=autocast_dtype or torch.float32, enabled=autocast_dtype is not None):
                    logits = network(inputs)
                loss = weighted_loss(logits, labels, class_weights)
                optimiser.zero_grad(set_to_none=True)
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.unscale_(optimiser)
                else:
                    loss.backward()
                clip_gradients(network.parameters(), params.gradient_threshold, params.gradient_threshold_method)
                if scaler is not None:
                    scaler.step(optimiser)
                    scaler.update()
                else:
                    optimiser.step()
                loss_sum += loss.detach() * len(labels)
                trained += len(labels)
            mean_loss = float(loss_sum) / trained if trained else float("nan")
            history.append(EpochStats(len(plan), plan.num_l3, plan.num_augmented, mean_loss, time.perf_counter() - epoch_started))
            if on_epoch is not None:
                on_epoch(epoch, mean_loss)
            if checkpoint is not None:
                checkpoint(epoch, network)

    statistics_slices = estimate_population_statistics(
        network, cases, budget.preprocessing, device, rng, max_slices=budget.bn_statistics_slices, batch_size=budget.eval_batch_size
    )
    network = network.to(memory_format=torch.contiguous_format).eval()
    network.requires_grad_(True)
    group = optimiser.param_groups[0]
    settings = {
        "minibatch_size": loader_batch_size,
        "learning_rate": group["lr"],
        "momentum": group["momentum"],
        "weight_decay": group["weight_decay"],
        "gradient_threshold": params.gradient_threshold,
        "gradient_threshold_method": params.gradient_threshold_method,
        "class_loss_weights": class_weights.tolist(),
        "precision": precision,
        "device": str(device),
        "bn_statistics_slices": statistics_slices,
        "initial_weights": {"name": parent.name, "sha256": parent.sha256} if parent else "random",
        "frozen_parameters": len(frozen),
    }
    locate_rule = parent.model.locate_rule if parent else LocateRule()
    model = L3Model(network, budget.preprocessing, arch=budget.arch, source="trained", locate_rule=locate_rule)
    return TrainingResult(model, history, time.perf_counter() - started, settings)


def case_probabilities(model: L3Model, case: PreparedCase, *, batch_size: int = 64, device: str | torch.device | None = None) -> np.ndarray:
    """L3 probability of every slice of a prepared case, float64, scored from the cache by the
    inference engine as the reference scores a scan (:func:`~l3locator.engine.score_volume`:
    float32, the network's own layout). A diverged network's NaN is returned, not raised: it
    scores as a failed trial."""
    cached = torch.from_numpy(case.slices())
    slices = ScanSlices(model.preprocessing, case.slice_thickness_mm, case.superior_step, images=cached)
    classify = SliceClassifier(model, device, "fp32", channels_last=False, allow_non_finite=True)
    return score_slices(classify, slices, np.arange(case.num_slices), batch_size=batch_size)


def validation_counts(model: L3Model, cases: Sequence[PreparedCase], *, batch_size: int = 64, device: str | torch.device | None = None) -> SliceCounts:
    """Per-slice counts of the L3 class over all slices of ``cases``."""
    total = SliceCounts()
    for case in cases:
        total = total + slice_counts(case.targets(), case_probabilities(model, case, batch_size=batch_size, device=device))
    return total
