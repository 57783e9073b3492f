"""Random affine augmentation of preprocessed slices, batched (for oversampled L3 slices).

For each image independently, each of four transforms is switched on with probability
``probability`` and, if on, given a random magnitude (uniform in the range):

* rotation by up to ±``rotation_deg`` degrees about the image centre;
* translation by up to ±``translation_fraction`` of the image size, in x and y independently;
* shear (x along y) by up to ±``shear_deg`` degrees;
* reflection left–right (the patient's left and right swap; anterior stays at the top).

The composed transform is applied with ``affine_grid`` / ``grid_sample`` (bilinear); pixels
brought in from outside the image are 0, the value of air after the contrast stretch.
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

    cos, sin = torch.cos(angle), torch.sin(angle)
    rotation = torch.stack([torch.stack([cos, -sin], 1), torch.stack([sin, cos], 1)], 1)
    shearing = torch.eye(2).repeat(count, 1, 1)
    shearing[:, 0, 1] = shear
    reflection = torch.eye(2).repeat(count, 1, 1)
    reflection[:, 0, 0] = flip
    linear = rotation @ shearing @ reflection
    return torch.cat([linear, shift[:, :, None]], dim=2)


def augment_batch(images: torch.Tensor, generator: torch.Generator, ranges: AugmentationRanges = AugmentationRanges()) -> torch.Tensor:
    """A randomly transformed copy of ``images`` ``[B, C, H, W]`` (same device and dtype)."""
    theta = random_affine_matrices(images.shape[0], generator, ranges).to(images.device, images.dtype)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
