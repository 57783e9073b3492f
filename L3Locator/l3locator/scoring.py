"""Per-slice L3 probabilities from a model.

Scoring is exhaustive (every axial slice) and in float32 here: the reference that any faster
strategy must agree with.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .errors import L3LocatorError
from .modelfile import L3Model
from .preprocessing import assemble_inputs, preprocess_volume
from .volume import CTVolume

#: Called as ``progress(done, total)`` after each batch; return value ignored.
ProgressCallback = Callable[[int, int], None]


class Cancelled(L3LocatorError):
    """The caller asked to stop (``should_cancel()`` returned True)."""


def pick_device(device: str | torch.device | None = None) -> torch.device:
    """``device`` if given, else CUDA when present, else the CPU."""
    if device is not None:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def default_batch_size(input_size: int, device: torch.device, precision: str = "fp32") -> int:
    """Slices per network call that run fastest for a network taking ``input_size`` pixel
    inputs on ``device`` at ``precision`` (``"fp32"`` or ``"bf16"``).

    On a CPU a batch whose activations outgrow the caches runs slower per slice. Measured on a
    2-core EPYC (ResNet18 and ResNet50, 128 and 224 px, eager and channels-last float32,
    bfloat16 autocast): batches of 8 were the fastest or within 15 % of it everywhere except
    bfloat16 at 128 px, where 16 was 1.2x faster than 8; batches of 32 were up to 1.8x slower
    than 8 (ResNet50 at 224 px, eager float32). A GPU wants big batches.
    """
    if device.type == "cuda":
        return 64
    return 16 if precision == "bf16" and input_size <= 128 else 8


def probabilities_from_inputs(model: L3Model, inputs: torch.Tensor, device: torch.device) -> np.ndarray:
    """L3 probability (softmax of the L3 logit) for a batch of network inputs ``[B, 3, H, W]``."""
    logits = model.network(inputs.to(device, non_blocking=True))
    return torch.softmax(logits.float(), dim=1)[:, model.class_names.index("L3")].cpu().numpy()


def score_volume(
    model: L3Model,
    volume: CTVolume,
    *,
    batch_size: int | None = None,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """L3 probability of every axial slice, float64 ``[num_slices]``, index = slice index.

    ``batch_size``: slices per network call; None: :func:`default_batch_size`.
    """
    dev = pick_device(device)
    batch_size = batch_size or default_batch_size(model.preprocessing.input_size, dev)
    model.network.to(dev).eval()
    slices = preprocess_volume(volume, model.preprocessing)
    total = len(slices)
    probabilities = np.empty(total, dtype=np.float64)
    with torch.inference_mode():
        for start in range(0, total, batch_size):
            if should_cancel is not None and should_cancel():
                raise Cancelled("cancelled by the user")
            indices = np.arange(start, min(start + batch_size, total))
            inputs = assemble_inputs(slices, indices, model.preprocessing, volume.slice_thickness, volume.superior_step)
            probabilities[indices] = probabilities_from_inputs(model, inputs, dev)
            if progress is not None:
                progress(int(indices[-1]) + 1, total)
    return probabilities
