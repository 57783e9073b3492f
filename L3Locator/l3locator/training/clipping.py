"""Gradient clipping by L2 norm, the two methods of the paper (MATLAB's names).

* ``"l2norm"``: each learnable parameter tensor is looked at on its own; if the L2 norm of its
  gradient exceeds the threshold, that gradient is scaled down to norm = threshold. Other
  tensors are untouched.
* ``"global-l2norm"``: the L2 norm ``L`` of all gradients taken together is computed; if
  ``L`` exceeds the threshold, *every* gradient is scaled by ``threshold / L``
  (``torch.nn.utils.clip_grad_norm_``).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from .design import CLIPPING_METHODS


def clip_gradients(parameters: Iterable[torch.nn.Parameter], threshold: float, method: str) -> None:
    """Clip the ``.grad`` of ``parameters`` in place by ``method`` (see the module docstring)."""
    if method not in CLIPPING_METHODS:
        raise ValueError(f"unknown clipping method {method!r}; choose one of {CLIPPING_METHODS}")
    with_grad = [p for p in parameters if p.grad is not None]
    if not with_grad:
        return
    if method == "global-l2norm":
        torch.nn.utils.clip_grad_norm_(with_grad, threshold)
        return
    grads = [p.grad for p in with_grad]
    with torch.no_grad():  # one batched norm and one batched scale: no per-tensor Python loop
        norms = torch.stack(torch._foreach_norm(grads)).float()
        scales = (threshold / (norms + 1e-12)).clamp(max=1.0)
        torch._foreach_mul_(grads, list(scales.to(grads[0].dtype).unbind()))
