"""Quality-control picture: sagittal and coronal reformats with the L3 line, and the L3 slice.

Drawn with Pillow. Reformats are scaled to true proportions (slice thickness vs pixel
spacing), head at the top; the found slice is a red line and the L3 range a yellow band.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw

from .atomic import write_atomically
from .volume import CTVolume

if TYPE_CHECKING:
    from .pipeline import L3Result

DISPLAY_WINDOW_HU = (-400.0, 1000.0)
PANEL_HEIGHT = 384
BONE_HU = 200.0


def to_grey(hu: np.ndarray, window: tuple[float, float] = DISPLAY_WINDOW_HU) -> np.ndarray:
    """Map HU to uint8 grey through a display window."""
    low, high = window
    return (np.clip((hu.astype(np.float32) - low) / (high - low), 0.0, 1.0) * 255).astype(np.uint8)


def _reformat(plane: np.ndarray, superior_step: int, height_mm: float, width_mm: float) -> Image.Image:
    """A reformat ``[slice, x]`` as an image with the head up, resized to true proportions."""
    if superior_step > 0:
        plane = plane[::-1]
    scale = PANEL_HEIGHT / height_mm
    size = (max(1, int(round(width_mm * scale))), PANEL_HEIGHT)
    return Image.fromarray(to_grey(plane)).resize(size, Image.BILINEAR)


def _row_of(index: int, num_slices: int, superior_step: int) -> float:
    """Vertical pixel position (centre of slice ``index``) in a reformat panel."""
    from_top = (num_slices - 1 - index) if superior_step > 0 else index
    return (from_top + 0.5) * PANEL_HEIGHT / num_slices


def render_qc(volume: CTVolume, result: L3Result) -> Image.Image:
    """The QC picture for one scan and its result (RGB)."""
    stack = volume.axial_stack()
    n, rows, cols = stack.shape
    in_plane = [s for a, s in enumerate(volume.spacing) if a != volume.axial_axis]
    pixel_mm = float(np.mean(in_plane))
    height_mm = n * volume.slice_thickness
    # Cut through the spine: the row / column holding the most bone.
    bone = stack > BONE_HU
    column = int(np.argmax(bone.sum(axis=(0, 1)))) if bone.any() else cols // 2
    row = int(np.argmax(bone.sum(axis=(0, 2)))) if bone.any() else rows // 2
    sagittal = _reformat(np.asarray(stack[:, :, column]), volume.superior_step, height_mm, rows * pixel_mm)
    coronal = _reformat(np.asarray(stack[:, row, :]), volume.superior_step, height_mm, cols * pixel_mm)
    axial_index = result.l3_slice_index if result.l3_found else n // 2
    axial = Image.fromarray(to_grey(np.asarray(stack[axial_index]))).resize((PANEL_HEIGHT, PANEL_HEIGHT), Image.BILINEAR)

    panels = [sagittal.convert("RGB"), coronal.convert("RGB"), axial.convert("RGB")]
    header = 40
    canvas = Image.new("RGB", (sum(p.width for p in panels) + 20, PANEL_HEIGHT + header), "black")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for i, panel in enumerate(panels):
        canvas.paste(panel, (x, header))
        if i < 2 and result.l3_found:
            first, last = result.l3_slice_range
            y0, y1 = sorted((_row_of(first, n, volume.superior_step), _row_of(last, n, volume.superior_step)))
            draw.rectangle((x, header + y0, x + panel.width - 1, header + y1), outline=(255, 220, 0))
            y = header + _row_of(result.l3_slice_index, n, volume.superior_step)
            draw.line((x, y, x + panel.width - 1, y), fill=(255, 40, 40), width=2)
        x += panel.width + 10
    if result.l3_found:
        title = f"L3: slice {result.l3_slice_index} (range {result.l3_slice_range[0]}-{result.l3_slice_range[1]}) of {n}, confidence {result.confidence:.2f}"
    else:
        title = f"no L3 found in {n} slices"
    flags = ", ".join(result.flags) if result.flags else "no flags"
    draw.text((6, 4), title, fill="white")
    draw.text((6, 20), f"flags: {flags}   |   sagittal, coronal, axial at {'L3' if result.l3_found else 'mid-scan'}", fill=(200, 200, 200))
    return canvas


def write_qc_png(path: str | os.PathLike, volume: CTVolume, result: L3Result) -> Path:
    """Render the QC picture and save it as PNG at ``path``, atomically (:mod:`l3locator.atomic`)."""
    picture = render_qc(volume, result)
    return write_atomically(path, lambda temporary: picture.save(temporary, format="PNG"))
