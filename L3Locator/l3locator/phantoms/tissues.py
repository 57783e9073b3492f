"""Body-composition ground truth of a phantom: which tissue was painted where on one slice.

The generator paints tissues by alpha compositing (partial volume in-plane and across the slice
thickness). Repainting one slice with the canvas tracking tissues gives, per pixel, the fraction
covered by skeletal muscle, intermuscular fat, visceral fat and subcutaneous fat as drawn, before
noise and blur: the truth a measurement on the reconstructed slice is judged against.

What the generator calls each tissue: the body wall's muscle layer, psoas, quadratus lumborum,
iliacus, erector spinae and the diaphragmatic crura are muscle; the body wall's fat under the skin
is SAT; the fat filling the body cavity and the renal sinus fat are VAT (the small vessels and
nodes in it are not). The phantoms paint no intermuscular fat, so their IMAT is zero. Skin, arms,
organs, bowel (wall, content, stool), vessels and bone are none of the four.
"""

from __future__ import annotations

import numpy as np

from ..body_composition.tissues import TISSUES
from .generate import Phantom, build_scene
from .scanner import items_by_slice


def tissue_fractions(phantom: Phantom, slice_index: int) -> np.ndarray:
    """Fraction (0-1) of each pixel of stored slice ``slice_index`` painted with each tissue.

    Returns float32 ``[tissue, j, i]`` in :data:`~l3locator.body_composition.TISSUES` order, on
    the grid of ``phantom.volume.voxels[slice_index]``. The phantom's scene is rebuilt from its
    seed and recorded arguments (``phantom.params``) and only this slice is painted.

    Raises:
        IndexError: ``slice_index`` is not a slice of the phantom.
        ValueError: the phantom is a spine crop (:mod:`~l3locator.phantoms.crops`), whose grid is not the scene's.
    """
    p = phantom.params
    if "crop" in p:
        raise ValueError("a spine crop has no body-composition truth: its grid is not the rendered scene's")
    num_slices = int(p["num_slices"])
    if not 0 <= slice_index < num_slices:
        raise IndexError(f"slice {slice_index} is outside the phantom's {num_slices} slices")
    ni, nj = p["shape_ij"]
    scene = build_scene(int(p["seed"]), ni, nj, p["slice_thickness_mm"], p["pixel_spacing_mm"], p["extent"], p["noise_hu"], p["variant"])
    painted = num_slices - 1 - slice_index if p["superior_first"] else slice_index
    canvas = scene.canvas
    canvas.track_tissues()
    canvas.start(scene.lowest_z_mm + painted * scene.thickness_mm)
    for item in items_by_slice(scene.items, scene.lowest_z_mm, num_slices, scene.thickness_mm)[painted]:
        item.paint(canvas)  # as the scanner paints the slice
    assert canvas.tissue_fractions is not None
    return canvas.tissue_fractions.copy()


def true_tissue_areas_cm2(phantom: Phantom, slice_index: int) -> dict[str, float]:
    """True area (cm^2) of each tissue on stored slice ``slice_index``: the painted fractions
    (:func:`tissue_fractions`) summed over the slice, times the pixel area."""
    pixel_cm2 = (float(phantom.params["pixel_spacing_mm"]) / 10.0) ** 2
    fractions = tissue_fractions(phantom, slice_index)
    return {name: float(fractions[n].sum(dtype=np.float64)) * pixel_cm2 for n, name in enumerate(TISSUES)}
