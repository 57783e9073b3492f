"""Random augmentation of preprocessed slices (values in [0, 1]), batched.

**Geometric** (:func:`augment_batch`): for each image independently, each transform is switched
on with probability ``probability`` and, if on, given a random magnitude (uniform in the range):

* rotation by up to ±``rotation_deg`` degrees about the image centre;
* translation by up to ±``translation_fraction`` of the image size, in x and y independently;
* shear (x along y) by up to ±``shear_deg`` degrees;
* reflection left–right (the patient's left and right swap; anterior stays at the top);
* zoom by a factor in ``[1 - scale_fraction, 1 + scale_fraction]`` (0: off, the paper's set).

The composed transform is applied with ``affine_grid`` / ``grid_sample`` (bilinear); pixels
brought in from outside the image are 0, the value of air after the contrast stretch.

**Intensity** (:func:`augment_intensity`, not in the paper): per image, each switched on with
probability 0.5: a gamma curve, a contrast/brightness change, a Gaussian blur (partial-volume and
reconstruction-kernel differences) and Gaussian noise (dose differences). The three channels of
a sample (slices of one scan) share the gamma, contrast and blur; the noise is drawn per pixel.

**Which samples** (:func:`augment_samples`, by the training budget's ``augmentation``):
``"paper"`` transforms only the oversampled L3 copies, geometrically; ``"all-slices"`` gives every
sample, L3 or not, a geometric and an intensity variant, so that "looks augmented" carries no
information about the label.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentationRanges:
    """Magnitudes (degrees, fraction of the image size) and the per-transform probability."""

    rotation_deg: float = 15.0
    translation_fraction: float = 0.1
    shear_deg: float = 10.0
    reflection: bool = True
    probability: float = 0.5
    scale_fraction: float = 0.0


PAPER_RANGES = AugmentationRanges()
"""The paper's four transforms (rotation, translation, shear, reflection)."""

ALL_SLICES_RANGES = AugmentationRanges(scale_fraction=0.25)
"""Used when every slice is augmented: the paper's transforms plus zoom (patient size, field of view)."""


def random_affine_matrices(count: int, generator: torch.Generator, ranges: AugmentationRanges = AugmentationRanges()) -> torch.Tensor:
    """``[count, 2, 3]`` matrices for ``affine_grid`` (normalised coordinates, output → input)."""

    def uniform(limit: float) -> torch.Tensor:
        return (torch.rand(count, generator=generator) * 2.0 - 1.0) * limit

    def switched() -> torch.Tensor:
        return torch.rand(count, generator=generator) < ranges.probability

    angle = torch.where(switched(), uniform(math.radians(ranges.rotation_deg)), torch.zeros(count))
    shear = torch.where(switched(), uniform(math.tan(math.radians(ranges.shear_deg))), torch.zeros(count))
    on = switched()
    # Normalised coordinates span 2 units across the image, so a fraction f of the size is 2 f.
    shift = torch.where(on[:, None], torch.stack([uniform(2 * ranges.translation_fraction), uniform(2 * ranges.translation_fraction)], 1), torch.zeros(count, 2))
    flip = torch.where(switched() & ranges.reflection, -1.0, 1.0)
    zoom = torch.where(switched(), 1.0 + uniform(ranges.scale_fraction), torch.ones(count)) if ranges.scale_fraction else torch.ones(count)

    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    shearing = torch.eye(2).repeat(count, 1, 1)
    shearing[:, 0, 1] = shear
    reflection = torch.eye(2).repeat(count, 1, 1)
    reflection[:, 0, 0] = flip
    # The matrix maps output to input coordinates, so a zoom by z samples the input at 1 / z.
    linear = rotation @ shearing @ reflection / zoom[:, None, None]
    return torch.cat([linear, shift[:, :, None]], dim=2)


def augment_batch(images: torch.Tensor, generator: torch.Generator, ranges: AugmentationRanges = AugmentationRanges()) -> torch.Tensor:
    """A randomly transformed copy of ``images`` ``[B, C, H, W]`` (same device and dtype)."""
    theta = random_affine_matrices(images.shape[0], generator, ranges).to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass(frozen=True)
class IntensityRanges:
    """Magnitudes of :func:`augment_intensity` (values are in the [0, 1] units of the stretched input)."""

    gamma: tuple[float, float] = (0.7, 1.5)
    contrast: float = 0.3
    brightness: float = 0.08
    blur_sigma_px: tuple[float, float] = (0.4, 1.2)
    noise_sd: float = 0.04
    probability: float = 0.5


def _gaussian_kernels(sigmas: torch.Tensor, radius: int) -> torch.Tensor:
    """``[B, 2 radius + 1]`` normalised 1D Gaussian kernels (sigma in pixels; 0 gives a delta)."""
    offsets = torch.arange(-radius, radius + 1, dtype=sigmas.dtype)
    safe = sigmas.clamp_min(1e-3)[:, None]
    kernels = torch.exp(-0.5 * (offsets[None, :] / safe) ** 2)
    return kernels / kernels.sum(dim=1, keepdim=True)


def augment_intensity(images: torch.Tensor, generator: torch.Generator, ranges: IntensityRanges = IntensityRanges()) -> torch.Tensor:
    """A randomly changed copy of ``images`` ``[B, C, H, W]`` in [0, 1] (see the module docstring)."""
    count, channels, height, width = images.shape
    x = images.float().clamp(0.0, 1.0)

    def uniform(lo: float, hi: float) -> torch.Tensor:
        return lo + torch.rand(count, generator=generator) * (hi - lo)

    def switched() -> torch.Tensor:
        return torch.rand(count, generator=generator) < ranges.probability

    def per_image(values: torch.Tensor) -> torch.Tensor:
        return values.to(x.device)[:, None, None, None]

    gamma = torch.where(switched(), uniform(*ranges.gamma), torch.ones(count))
    x = x.clamp_min(1e-6) ** per_image(gamma)
    on = switched()
    contrast = torch.where(on, uniform(1.0 - ranges.contrast, 1.0 + ranges.contrast), torch.ones(count))
    brightness = torch.where(on, uniform(-ranges.brightness, ranges.brightness), torch.zeros(count))
    x = x * per_image(contrast) + per_image(brightness)

    blur_on = switched()
    if bool(blur_on.any()):
        sigmas = uniform(*ranges.blur_sigma_px)[blur_on]
        radius = int(math.ceil(3 * ranges.blur_sigma_px[1]))
        kernels = _gaussian_kernels(sigmas, radius).to(x.device, x.dtype).repeat_interleave(channels, 0)
        blurred = x[blur_on.to(x.device)].reshape(1, -1, height, width)
        groups = blurred.shape[1]
        blurred = F.conv2d(F.pad(blurred, (radius, radius, 0, 0), mode="replicate"), kernels[:, None, None, :], groups=groups)
        blurred = F.conv2d(F.pad(blurred, (0, 0, radius, radius), mode="replicate"), kernels[:, None, :, None], groups=groups)
        x[blur_on.to(x.device)] = blurred.reshape(-1, channels, height, width)

    noise_sd = torch.where(switched(), uniform(0.0, ranges.noise_sd), torch.zeros(count))
    noise = torch.randn(x.shape, generator=generator).to(x.device)
    x = x + noise * per_image(noise_sd)
    return x.clamp(0.0, 1.0).to(images.dtype)


def augment_samples(images: torch.Tensor, oversampled: torch.Tensor, augmentation: str, generator: torch.Generator) -> torch.Tensor:
    """A minibatch ``[B, C, H, W]`` augmented as ``augmentation`` says (see the module docstring).

    ``oversampled`` (bool ``[B]``) marks the oversampled L3 copies. ``images`` is not modified.
    """
    if augmentation == "all-slices":
        return augment_intensity(augment_batch(images, generator, ALL_SLICES_RANGES), generator)
    if augmentation != "paper":
        raise ValueError(f"unknown augmentation {augmentation!r}")
    out = images.clone()
    oversampled = oversampled.to(images.device)
    if bool(oversampled.any()):
        out[oversampled] = augment_batch(images[oversampled], generator, PAPER_RANGES)
    return out
