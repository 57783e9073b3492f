"""Running a model's network on batches of slices, at a chosen numeric precision.

Precisions:

* ``"fp32"``: float32 with channels-last inputs (oneDNN's fastest float32 layout on a CPU).
* ``"bf16"``: bfloat16 autocast with channels-last inputs. Two to three times faster than
  float32 on CPUs with native bfloat16 instructions (AVX512-BF16, AMX), and on recent GPUs.
  Logits drift by about 0.1 from float32, so probabilities differ slightly.

Which to use where is decided by :mod:`l3locator.fast_scoring` (its ``"auto"`` uses bfloat16 only
on CPUs where it is native: elsewhere it is emulated and slower than float32, and a GPU is fast
in float32 already).

The network is used as it is (moved to the device and put in eval mode, like
:func:`l3locator.scoring.score_volume`); its weights are never copied or converted, so a model
shared with a Slicer module or a training loop is left untouched.
"""

from __future__ import annotations

import numpy as np
import torch

from .modelfile import L3Model
from .scoring import pick_device

PRECISIONS = ("fp32", "bf16")


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` computes bfloat16 convolutions natively (not emulated)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    return False


class SliceClassifier:
    """Callable turning network inputs ``[B, 3, H, W]`` (float32) into L3 probabilities.

    Args:
        model: the model whose network is run (moved to ``device`` and set to eval mode).
        device: ``"cpu"``, ``"cuda"``...; None picks CUDA when present.
        precision: ``"fp32"`` or ``"bf16"`` (see the module docstring).
    """

    def __init__(self, model: L3Model, device: str | torch.device | None = None, precision: str = "fp32") -> None:
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
        self.device = pick_device(device)
        self.precision = precision
        self.network = model.network.to(self.device).eval()
        self.l3_column = model.class_names.index("L3")

    def __call__(self, inputs: torch.Tensor) -> np.ndarray:
        """Softmax probability of the L3 class per input, float64 ``[B]``."""
        x = inputs.to(self.device, non_blocking=True).contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            logits = self.network(x)
        return torch.softmax(logits.float(), dim=1)[:, self.l3_column].cpu().numpy().astype(np.float64)
