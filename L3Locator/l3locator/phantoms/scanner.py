"""The scanner: the shared tissue texture, then the items painted slice by slice with image noise,
reconstruction blur and int16 HU storage, into voxels and a label map."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from scipy import ndimage

from .canvas import Canvas
from .shapes import Item

#: Correlation length (mm) of the shared texture (trabeculae, stool, lung vessels).
_TEXTURE_SIGMA_MM = 1.6
#: Slice-profile blur along z (standard deviation in slices).
_SLICE_PROFILE_SIGMA = 0.35
_TRUNCATE = 3.0  # Gaussian kernels reach 3 standard deviations


def texture_field(rng: np.random.Generator, nj: int, ni: int, pixel_mm: float) -> np.ndarray:
    """Smooth unit-variance noise (twice the slice size, ``[row, column]``) shared by textured tissues."""
    white = rng.standard_normal((2 * nj + 8, 2 * ni + 8)).astype(np.float32)
    tex = ndimage.gaussian_filter(white, max(_TEXTURE_SIGMA_MM / pixel_mm, 0.7))
    return tex / max(float(tex.std()), 1e-6)


def _kernel_energy(sigma: float, truncate: float = _TRUNCATE) -> float:
    """Sum of squared weights of scipy's 1-D Gaussian kernel (noise variance kept by the blur)."""
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    w /= w.sum()
    return float(np.sum(w * w))


class Reconstruction:
    """Noise with a grain, then the reconstruction blur (in-plane PSF per slice, then the slice
    profile along z), then int16 HU.

    Real CT noise is correlated over about a millimetre (neighbouring pixels of a 0.7-1 mm
    reconstruction correlate 0.4-0.7, ``bench/results/realism.md``), so it survives the network's
    downsizing; white noise would average away. The noise is blurred by its grain (``grain_mm``,
    Gaussian sigma) before the PSF, and scaled so that its standard deviation after all blurs is
    ``noise_hu``.
    """

    def __init__(self, pixel_mm: float, noise_hu: float, rng: np.random.Generator, grain_mm: float = 0.0):
        self.sigma_in_plane = float(np.clip(0.7 / pixel_mm, 0.4, 1.0))  # pixels
        self.sigma_grain = grain_mm / pixel_mm  # pixels
        noise_sigma = math.hypot(self.sigma_grain, self.sigma_in_plane)  # Gaussian blurs compose
        self.noise_scale = np.float32(noise_hu / math.sqrt(_kernel_energy(_SLICE_PROFILE_SIGMA) * _kernel_energy(noise_sigma) ** 2))
        self.rng = rng

    def slice(self, painted: np.ndarray, out: np.ndarray) -> None:
        """Add noise to the painted slice (float32 HU, in place) and write its in-plane blur to ``out``."""
        noise = self.rng.standard_normal(painted.shape, dtype=np.float32)
        if self.sigma_grain > 0.0:
            noise = ndimage.gaussian_filter(noise, self.sigma_grain, truncate=_TRUNCATE)
        painted += noise * self.noise_scale
        ndimage.gaussian_filter(painted, self.sigma_in_plane, output=out, truncate=_TRUNCATE)

    @staticmethod
    def volume(slices: np.ndarray) -> np.ndarray:
        """Blur the stack of slices (float32 HU ``[k, j, i]``, in place) along k and store it as int16 HU (-1024..3071)."""
        ndimage.gaussian_filter1d(slices, _SLICE_PROFILE_SIGMA, axis=0, output=slices, truncate=_TRUNCATE)
        np.clip(slices, -1024.0, 3071.0, out=slices)
        return np.rint(slices, out=slices).astype(np.int16)


class Rendering(NamedTuple):
    """The painted scan, slices ``k`` from the lowest (k = 0) up."""

    voxels: np.ndarray  # int16 HU [k, j, i]
    labels: np.ndarray  # uint8 VerSe ids [k, j, i]
    body_present: np.ndarray  # bool [k, label]: which vertebral-body labels each slice holds


def items_by_slice(items: list[Item], z_lo: float, num_slices: int, thickness: float) -> list[list[Item]]:
    """For each slice, the items (in painting order) whose z-range may touch its slab."""
    buckets: list[list[Item]] = [[] for _ in range(num_slices)]
    for item in items:
        k0 = max(0, math.floor(max((item.zmin - z_lo) / thickness, -1.0) - 0.5))
        k1 = min(num_slices - 1, math.ceil(min((item.zmax - z_lo) / thickness, num_slices + 1.0) + 0.5))
        for k in range(k0, k1 + 1):
            buckets[k].append(item)
    return buckets


def render(canvas: Canvas, items: list[Item], z_lo: float, num_slices: int, reconstruction: Reconstruction) -> Rendering:
    """Paint ``num_slices`` slices centred at ``z_lo + k * thickness`` (torso mm) and reconstruct them."""
    thickness = canvas.thickness
    buckets = items_by_slice(items, z_lo, num_slices, thickness)
    slices = np.empty((num_slices, canvas.nj, canvas.ni), np.float32)
    labels = np.empty((num_slices, canvas.nj, canvas.ni), np.uint8)
    body_present = np.zeros((num_slices, 256), bool)
    for k in range(num_slices):
        canvas.start(z_lo + k * thickness)
        for item in buckets[k]:
            item.paint(canvas)
        reconstruction.slice(canvas.hu, slices[k])
        labels[k] = canvas.labels
        body_present[k, list(canvas.body_labels)] = True
    return Rendering(reconstruction.volume(slices), labels, body_present)
