"""Tight crops around the spine: what a spine-only field of view looks like (:func:`crop_around_spine`).

Real scans are sometimes cut down to the spine (a research crop, a reconstruction targeted on the
vertebrae): a field of view of about 100 mm with no body outline, no organs and no lungs, a few
vertebrae long, often noisier than a full reconstruction. A network trained on whole-body fields
of view has never seen one and misses L3 there (the real L3 crop in ``../shared`` is 110 mm
across, 70 mm long, 63 HU noise). A crop is cut from a rendered phantom, so its anatomy,
labels and partial volume are the phantom's own:

* **in-plane**: a square of side :data:`FOV_MM` (mm, uniform) centred on the lumbar vertebrae's
  label centroid (bodies and posterior elements, VerSe 18-24: T11-L5), shifted by up to
  :data:`CENTRE_SHIFT_FRACTION` of the side; clipped to the slice;
* **along z**: :data:`LENGTH_MM` long (mm, uniform); with probability :data:`P_ABOUT_L3` the
  window's centre lies within L3 or up to a third of the window beyond it, otherwise anywhere
  on T11-L5, so some crops miss L3 (a crop does not imply L3);
* **noise**: independent Gaussian noise of :data:`EXTRA_NOISE_HU` (HU, uniform) added to every
  voxel, uncorrelated between pixels as in the real crop.
"""

from __future__ import annotations

import numpy as np

from ..labels import l3_range_from_vertebra_map
from ..volume import CTVolume
from .generate import Phantom, _slice_ranges
from .vertebrae import L3_LABEL

#: Side of the square field of view (mm).
FOV_MM = (80.0, 180.0)
#: Largest shift of the crop's centre from the spine's, as a fraction of the side.
CENTRE_SHIFT_FRACTION = 0.15
#: Length of the crop along the body axis (mm).
LENGTH_MM = (50.0, 150.0)
#: Probability that the crop is placed about L3 (else anywhere on T11-L5).
P_ABOUT_L3 = 0.35
#: Standard deviation of the added noise (HU).
EXTRA_NOISE_HU = (0.0, 60.0)
#: VerSe ids whose voxels place the crop (T11 to L5).
SPINE_LABELS = tuple(range(18, 25))


def crop_generator(seed: int) -> np.random.Generator:
    """The crop's random stream for phantom ``seed``, apart from the phantom's own draws."""
    return np.random.default_rng([seed, 1])


def _window(center: int, size: int, length: int) -> tuple[int, int]:
    """``[start, stop)`` of ``size`` items centred on ``center``, moved to fit in ``[0, length)``."""
    size = min(size, length)
    start = min(max(center - size // 2, 0), length - size)
    return start, start + size


def crop_around_spine(phantom: Phantom, rng: np.random.Generator) -> Phantom:
    """A spine-only crop of ``phantom`` (see the module docstring), with its labels and ranges.

    The crop keeps the phantom's voxel size and slice order; its geometry is the phantom's,
    moved to the crop's first voxel, so RAS positions are unchanged. ``params`` gains ``"crop"``
    (field of view and length in mm, first voxel ``[k, j, i]``, added noise in HU).

    Raises:
        ValueError: the phantom shows none of T11-L5 (nothing to centre a spine crop on).
    """
    labels = phantom.vertebra_labels
    on_spine = np.isin(labels, SPINE_LABELS)
    if not on_spine.any():
        raise ValueError("the phantom shows none of T11-L5: no lumbar spine to crop around")
    n_k, n_j, n_i = labels.shape
    pixel_mm = float(phantom.params["pixel_spacing_mm"])
    thickness_mm = float(phantom.params["slice_thickness_mm"])

    fov_mm = float(rng.uniform(*FOV_MM))
    side = max(16, int(round(fov_mm / pixel_mm)))
    _, rows, columns = np.nonzero(on_spine)
    shift_j, shift_i = rng.uniform(-CENTRE_SHIFT_FRACTION, CENTRE_SHIFT_FRACTION, 2) * side
    j0, j1 = _window(int(round(rows.mean() + shift_j)), side, n_j)
    i0, i1 = _window(int(round(columns.mean() + shift_i)), side, n_i)

    length_mm = float(rng.uniform(*LENGTH_MM))
    count = max(2, int(round(length_mm / thickness_mm)))
    l3_slices = np.flatnonzero((labels == L3_LABEL).any(axis=(1, 2)))
    if l3_slices.size and rng.random() < P_ABOUT_L3:
        reach = count // 3
        center = int(rng.integers(l3_slices[0] - reach, l3_slices[-1] + reach + 1))
    else:
        spine_slices = np.flatnonzero(on_spine.any(axis=(1, 2)))
        center = int(rng.integers(spine_slices[0], spine_slices[-1] + 1))
    k0, k1 = _window(center, count, n_k)

    noise_hu = float(rng.uniform(*EXTRA_NOISE_HU))
    voxels = phantom.volume.voxels[k0:k1, j0:j1, i0:i1].astype(np.float32)
    voxels += rng.normal(0.0, noise_hu, voxels.shape).astype(np.float32)
    voxels = np.clip(np.rint(voxels), -1024, 3071).astype(np.int16)
    crop_labels = np.ascontiguousarray(labels[k0:k1, j0:j1, i0:i1])

    ijk_to_ras = phantom.volume.ijk_to_ras.copy()
    ijk_to_ras[:3, 3] = phantom.volume.ras_of_ijk([i0, j0, k0])
    volume = CTVolume(voxels, ijk_to_ras, source=f"{phantom.volume.source} spine crop", metadata=dict(phantom.volume.metadata))

    present = np.stack([np.bincount(crop_labels[k].ravel(), minlength=256) > 0 for k in range(k1 - k0)])
    body_ranges = {name: (max(a, k0) - k0, min(b, k1 - 1) - k0) for name, (a, b) in phantom.body_ranges.items() if a < k1 and b >= k0}
    params = {**phantom.params, "shape_ij": [i1 - i0, j1 - j0], "num_slices": k1 - k0,
              "crop": {"fov_mm": round(fov_mm, 1), "length_mm": round(length_mm, 1), "first_voxel_kji": [k0, j0, i0],
                       "extra_noise_hu": round(noise_hu, 1)}}
    return Phantom(volume=volume, vertebra_labels=crop_labels, level_ranges=_slice_ranges(present, flip=False),
                   l3_range=l3_range_from_vertebra_map(crop_labels), params=params, body_ranges=body_ranges)
