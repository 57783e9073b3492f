"""Quality-control pictures, drawn with Pillow.

* The L3 picture (:func:`write_qc_png`): sagittal and coronal reformats with the L3 line, and the
  L3 slice. Reformats are scaled to true proportions (slice thickness vs pixel spacing), head at
  the top; the found slice is a red line and the L3 range a yellow band.
* The body-composition picture (:func:`write_body_composition_png`): the measured slice plain
  and with its tissues coloured, with the areas, mean HU and SMI.
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
    from .body_composition import BodyComposition
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


#: Display window (HU) of the body-composition picture: soft tissue.
SOFT_TISSUE_WINDOW_HU = (-250.0, 250.0)
#: Side (pixels) of each panel of the body-composition picture.
BODY_COMPOSITION_PANEL = 512
#: Opacity of the tissue colours over the CT.
TISSUE_OPACITY = 0.55


def _crop_around(mask: np.ndarray, margin: float) -> tuple[slice, slice]:
    """Rows and columns of ``mask``'s bounding box widened by ``margin`` of its size (the whole
    image for an empty mask)."""
    if not mask.any():
        return slice(None), slice(None)
    bounds = []
    for axis in (1, 0):
        present = np.flatnonzero(mask.any(axis=axis))
        pad = int(margin * (present[-1] - present[0] + 1)) + 1
        bounds.append(slice(max(present[0] - pad, 0), min(present[-1] + pad + 1, mask.shape[1 - axis])))
    return bounds[0], bounds[1]


def _fit(picture: Image.Image, side: int) -> Image.Image:
    """``picture`` scaled to fit a black ``side`` x ``side`` square, centred, proportions kept."""
    scale = side / max(picture.width, picture.height)
    size = (max(1, round(picture.width * scale)), max(1, round(picture.height * scale)))
    square = Image.new("RGB", (side, side), "black")
    square.paste(picture.convert("RGB").resize(size, Image.NEAREST), ((side - size[0]) // 2, (side - size[1]) // 2))
    return square


def render_body_composition(volume: CTVolume, composition: BodyComposition) -> Image.Image:
    """The body-composition picture (RGB): the measured slice around the tissues found, and the
    same with its tissues coloured (muscle red, IMAT green, VAT yellow, SAT cyan), anterior up
    and the patient's right on the left; the areas, mean HU, SMI and warnings written above
    and below."""
    from .body_composition import TISSUE_COLOURS_RGB, TISSUE_LABELS, TISSUE_TITLES, TISSUES, slice_label_volume

    grey = to_grey(np.asarray(volume.axial_stack()[composition.slice_index]), SOFT_TISSUE_WINDOW_HU)
    labels = np.asarray(slice_label_volume(volume, composition.slice_index, composition.labels).axial_stack()[0])
    plain = np.repeat(grey[..., None].astype(np.float32), 3, axis=2)
    coloured = plain.copy()
    for tissue in TISSUES:
        where = labels == TISSUE_LABELS[tissue]
        coloured[where] = (1 - TISSUE_OPACITY) * coloured[where] + TISSUE_OPACITY * 255.0 * np.asarray(TISSUE_COLOURS_RGB[tissue])
    rows, cols = _crop_around(labels > 0, margin=0.08)
    panels = [_fit(Image.fromarray(panel[rows, cols].astype(np.uint8)), BODY_COMPOSITION_PANEL) for panel in (plain, coloured)]
    header, line = 64, 16
    footer = line * (len(composition.warnings) + 1)
    canvas = Image.new("RGB", (2 * BODY_COMPOSITION_PANEL + 10, BODY_COMPOSITION_PANEL + header + footer), "black")
    for n, panel in enumerate(panels):
        canvas.paste(panel, (n * (BODY_COMPOSITION_PANEL + 10), header))
    draw = ImageDraw.Draw(canvas)
    areas, mean_hu = composition.areas_cm2, composition.mean_hu
    slices = composition.slices_used
    where = f"slice {composition.slice_index}" + (f" (mean of slices {slices[0]}-{slices[-1]})" if len(slices) > 1 else "")
    smi = "SMI: height unknown"
    if composition.smi_cm2_per_m2 is not None:
        smi = f"SMI {composition.smi_cm2_per_m2:.1f} cm2/m2 (height {composition.height_m:.2f} m)"
    draw.text((6, 4), f"Body composition at {where}: {smi}", fill="white")
    x = 6
    for tissue in TISSUES:
        hu = "" if mean_hu[tissue] is None else f", {mean_hu[tissue]:.0f} HU"
        text = f"{TISSUE_TITLES[tissue]} {areas[tissue]:.1f} cm2{hu}"
        draw.rectangle((x, 26, x + 12, 38), fill=tuple(int(255 * c) for c in TISSUE_COLOURS_RGB[tissue]))
        draw.text((x + 18, 26), text, fill="white")
        x += 22 + int(draw.textlength(text)) + 18
    draw.text((6, 44), f"{composition.method}: a threshold method; review and edit the tissues before use", fill=(200, 200, 200))
    y = header + BODY_COMPOSITION_PANEL + 2
    for warning in composition.warnings:
        draw.text((6, y), f"warning: {warning}", fill=(255, 200, 0))
        y += line
    return canvas


def write_body_composition_png(path: str | os.PathLike, volume: CTVolume, composition: BodyComposition) -> Path:
    """Render the body-composition picture and save it as PNG at ``path``, atomically."""
    picture = render_body_composition(volume, composition)
    return write_atomically(path, lambda temporary: picture.save(temporary, format="PNG"))
