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


def probabilities_from_inputs(model: L3Model, inputs: torch.Tensor, device: torch.device) -> np.ndarray:
    """L3 probability (softmax of the L3 logit) for a batch of network inputs ``[B, 3, H, W]``."""
    logits = model.network(inputs.to(device, non_blocking=True))
    return torch.softmax(logits.float(), dim=1)[:, model.class_names.index("L3")].cpu().numpy()


def score_volume(
    model: L3Model,
    volume: CTVolume,
    *,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: ProgressCallback | None = None,
    should_cancel: Callable[[], bool] | None = None,
) -> np.ndarray:
    """L3 probability of every axial slice, float64 ``[num_slices]``, index = slice index."""
    dev = pick_device(device)
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
