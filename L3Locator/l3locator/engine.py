"""The inference engine: every place that runs a network on CT slices goes through here.

* **Device** (:func:`pick_device`): CUDA when present, else the CPU; a bad or unavailable device
  is an :class:`~l3locator.errors.InputError` with one line.
* **Batch size** (:func:`default_batch_size`): slices per network call, by input size, device
  and precision.
* **Precision** (:data:`PRECISIONS`, :func:`resolve_precision`): the names scoring can be asked
  for. One network call runs in ``"fp32"`` or ``"bf16"``:

  - ``"fp32"``: float32. :class:`SliceClassifier` uses channels-last inputs (oneDNN's fastest
    float32 layout on a CPU) unless asked for the network's own layout, which the reference
    (:func:`score_volume`) and training validation use; the two layouts differ by about 1e-6.
  - ``"bf16"``: bfloat16 autocast with channels-last inputs. Two to three times faster than
    float32 on CPUs with native bfloat16 instructions (AVX512-BF16, AMX), and on recent GPUs.
    Logits drift by about 0.1 from float32, so probabilities differ slightly.
  - ``"mixed"`` (a scoring strategy, :mod:`l3locator.fast_scoring`): screen in bfloat16 and
    re-score in float32 where the answer could change.
  - ``"auto"``: ``"mixed"`` on a CPU where bfloat16 is native, else ``"fp32"`` (elsewhere
    bfloat16 is emulated and slower than float32, and a GPU is fast in float32 already).

* **Slices as network inputs** (:class:`ScanSlices`): preprocessing steps 1–4
  (:mod:`l3locator.preprocessing`) made on first use, step 5 per batch.
* **The scoring loop** (:func:`score_slices`): any set of slice indices, in batches, with
  ``progress`` and ``should_cancel``; a network that yields a non-finite probability stops it
  with a :class:`~l3locator.errors.ModelFileError` instead of passing NaN on.
* **The reference** (:func:`score_volume`): every slice in float32.

The network is used as it is (moved to the device and put in eval mode); its weights are never
copied or converted, so a model shared with a Slicer module or a training loop is left untouched.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .errors import InputError, L3LocatorError, ModelFileError
from .modelfile import L3Model
from .preprocessing import PreprocessingConfig, SliceWindows, assemble_inputs, neighbor_offset_slices, preprocess_slices, slice_windows
from .volume import CTVolume

#: Called as ``progress(done, total)`` after each batch; return value ignored.
ProgressCallback = Callable[[int, int], None]

#: The precisions scoring can be asked for (see the module docstring).
PRECISIONS = ("auto", "fp32", "bf16", "mixed")
#: Autocast dtype of each precision one network call can run at (None: plain float32).
_CALL_DTYPES: dict[str, torch.dtype | None] = {"fp32": None, "bf16": torch.bfloat16}
#: Device types the engine runs on.
DEVICE_TYPES = ("cpu", "cuda")


class Cancelled(L3LocatorError):
    """The caller asked to stop (``should_cancel()`` returned True)."""


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when present, else the CPU.

    Raises:
        InputError: ``device`` is not a CPU or CUDA device, or names a GPU this machine lacks.
    """
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        chosen = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        chosen = None
    if chosen is None or chosen.type not in DEVICE_TYPES:
        raise InputError(f"unknown device {str(device)!r} (use cpu or cuda)")
    if chosen.type == "cuda":
        available = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if available == 0:
            raise InputError(f"device {str(device)!r}: no CUDA GPU is available on this machine (use cpu)")
        if chosen.index is not None and chosen.index >= available:
            raise InputError(f"device {str(device)!r}: this machine has {available} CUDA GPU(s) (use cuda:0 to cuda:{available - 1})")
    return chosen


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """The concrete precision (``"fp32"``, ``"bf16"`` or ``"mixed"``) ``precision`` means on ``device``."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "auto":
        return "mixed" if device.type == "cpu" and native_bf16(device) else "fp32"
    return precision


def default_batch_size(input_size: int, device: torch.device, precision: str = "fp32") -> int:
    """Slices per network call that run fastest for a network taking ``input_size`` pixel
    inputs on ``device`` at ``precision`` (``"fp32"`` or ``"bf16"``).

    On a CPU a batch whose activations outgrow the caches runs slower per slice. Measured on a
    2-core EPYC (ResNet18 and ResNet50, 128 and 224 px, eager and channels-last float32,
    bfloat16 autocast): batches of 8 were the fastest or within 15 % of it everywhere except
    bfloat16 at 128 px and below; batches of 32 were up to 1.8x slower than 8 (ResNet50 at
    224 px, eager float32). bfloat16 at 128 px, ms per slice at batches 8 / 16 / 32 / 48: the
    shipped ResNet50 12.4 / 10.4 / 8.4 / 8.3, a ResNet18 - / 3.8 / 3.5 / -; at 64 px a ResNet50
    2.9 / 2.4 at 16 / 32. A GPU wants big batches.
    """
    if device.type == "cuda":
        return 64
    return 32 if precision == "bf16" and input_size <= 128 else 8


class SliceClassifier:
    """Callable turning network inputs ``[B, 3, H, W]`` into L3 probabilities: one network call.

    Args:
        model: the model whose network is run (moved to ``device`` and set to eval mode).
        device: ``"cpu"``, ``"cuda"``...; None picks CUDA when present (:func:`pick_device`).
        precision: ``"fp32"`` or ``"bf16"`` (see the module docstring).
        channels_last: feed channels-last inputs (the fast layout); False keeps the inputs'
            own layout, as the reference :func:`score_volume` does.
        allow_non_finite: return NaN or infinite probabilities as they come instead of raising
            (training validation: a diverged trial is a result, not a damaged model).
    """

    def __init__(self, model: L3Model, device: str | torch.device | None = None, precision: str = "fp32", *,
                 channels_last: bool = True, allow_non_finite: bool = False) -> None:
        if precision not in _CALL_DTYPES:
            raise ValueError(f"precision of a network call must be one of {tuple(_CALL_DTYPES)}, got {precision!r}")
        self.device = pick_device(device)
        self.precision = precision
        self.input_size = model.preprocessing.input_size
        self.network = model.network.to(self.device).eval()
        self.l3_column = model.class_names.index("L3")
        self.model_label = model.source or model.name
        self.channels_last = channels_last
        self.allow_non_finite = allow_non_finite

    def __call__(self, inputs: torch.Tensor) -> np.ndarray:
        """Softmax probability of the L3 class per input, float64 ``[B]``.

        Raises:
            ModelFileError: the network gave a NaN or infinite probability (unless allowed).
        """
        x = inputs.to(self.device, dtype=torch.float32, non_blocking=True)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        dtype = _CALL_DTYPES[self.precision]
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = self.network(x)
        probabilities = torch.softmax(logits.float(), dim=1)[:, self.l3_column].cpu().numpy().astype(np.float64)
        if not self.allow_non_finite and not np.isfinite(probabilities).all():
            raise ModelFileError(f"{self.model_label}: the network gave non-finite L3 probabilities (NaN or infinity); "
                                 "the model is damaged or unusable")
        return probabilities


class ScanSlices:
    """The axial slices of one scan as network inputs.

    Preprocessing steps 0–4 run on first use of a slice (once; a slice's result does not depend on
    which slices it is processed with); step 5 (channels) per batch.

    Args:
        config: the model's preprocessing.
        slice_thickness_mm: distance between slices (mm), for the 2.5D neighbours.
        superior_step: +1 if the slice index grows toward the head, -1 otherwise.
        hu_stack: the axial stack ``[num_slices, rows, columns]`` in HU, preprocessed on demand;
            or None when ``images`` holds every slice already.
        images: the preprocessed slices ``[num_slices, size, size]`` (values in [0, 1], float32
            or float16), when they are ready (a training cache).
        windows: step 0's windows on ``hu_stack`` (:func:`~l3locator.preprocessing.slice_windows`),
            required when ``config`` has a spine-centred field of view.
    """

    def __init__(self, config: PreprocessingConfig, slice_thickness_mm: float, superior_step: int = 1, *,
                 hu_stack: np.ndarray | None = None, images: torch.Tensor | None = None,
                 windows: SliceWindows | None = None) -> None:
        if (hu_stack is None) == (images is None):
            raise ValueError("give either hu_stack or images")
        if hu_stack is not None and (windows is None) != (config.spine_field_mm is None):
            raise ValueError("give windows exactly when the preprocessing has a spine-centred field of view")
        self.config = config
        self.slice_thickness_mm = slice_thickness_mm
        self.superior_step = superior_step
        self.hu_stack = hu_stack
        self.windows = windows
        if images is None:
            size = config.input_size
            self.images = torch.empty((len(hu_stack), size, size), dtype=torch.float32)
            self.ready = np.zeros(len(hu_stack), dtype=bool)
        else:
            self.images = images
            self.ready = np.ones(len(images), dtype=bool)
        self._neighbour_step = neighbor_offset_slices(config, slice_thickness_mm) * superior_step

    @classmethod
    def of_volume(cls, volume: CTVolume, config: PreprocessingConfig) -> ScanSlices:
        """The slices of ``volume``, preprocessed as they are needed."""
        return cls(config, volume.slice_thickness, volume.superior_step, hu_stack=volume.axial_stack(),
                   windows=slice_windows(volume, config))

    def __len__(self) -> int:
        return len(self.ready)

    def inputs(self, indices: np.ndarray) -> torch.Tensor:
        """The network inputs ``[len(indices), 3, size, size]`` for the slices at ``indices``."""
        indices = np.ascontiguousarray(indices, dtype=np.int64)
        needed = indices
        if self.config.channel_mode != "repeat":
            last = len(self) - 1
            needed = np.concatenate((indices, np.clip(indices - self._neighbour_step, 0, last), np.clip(indices + self._neighbour_step, 0, last)))
        todo = np.unique(needed)
        todo = todo[~self.ready[todo]]
        if todo.size:
            hu = self.hu_stack[todo] if self.windows is None else self.windows.cut(self.hu_stack, todo, self.config.hu_min)
            self.images[torch.as_tensor(todo)] = preprocess_slices(hu, self.config)
            self.ready[todo] = True
        return assemble_inputs(self.images, indices, self.config, self.slice_thickness_mm, self.superior_step)


def score_slices(
    classify: SliceClassifier,
    slices: ScanSlices,
    indices: np.ndarray,
    *,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """L3 probabilities of the slices at ``indices``, float64, in the order of ``indices``.

    Args:
        classify: the network call (device and precision).
        slices: the scan's slices.
        indices: slice indices to score, in the order they are batched.
        batch_size: slices per network call; None: :func:`default_batch_size` for the
            classifier's input size, device and precision.
        progress: called as ``progress(done, len(indices))`` after each batch.
        should_cancel: polled before each batch; returning True raises :class:`Cancelled`.
    """
    indices = np.ascontiguousarray(indices, dtype=np.int64)
    size = batch_size or default_batch_size(classify.input_size, classify.device, classify.precision)
    probabilities = np.empty(len(indices), dtype=np.float64)
    for start in range(0, len(indices), size):
        if should_cancel is not None and should_cancel():
            raise Cancelled("cancelled by the user")
        batch = indices[start : start + size]
        probabilities[start : start + len(batch)] = classify(slices.inputs(batch))
        if progress is not None:
            progress(start + len(batch), len(indices))
    return probabilities


def score_volume(
    model: L3Model,
    volume: CTVolume,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """L3 probability of every axial slice in float32, in order: the reference that any faster
    strategy must agree with. Float64 ``[num_slices]``, index = slice index.

    ``batch_size``: slices per network call; None: :func:`default_batch_size`.
    ``progress(done, num_slices)`` after each batch; ``should_cancel`` as in :func:`score_slices`.
    """
    classify = SliceClassifier(model, device, "fp32", channels_last=False)
    return score_slices(classify, ScanSlices.of_volume(volume, model.preprocessing), np.arange(volume.num_slices),
                        batch_size=batch_size, progress=progress, should_cancel=should_cancel)
