"""Draw a synthetic CT scan with its vertebra label map from a seed: :func:`generate_phantom`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..labels import l3_range_from_vertebra_map
from ..volume import CTVolume
from .anatomy import build_items
from .body import Table
from .canvas import Canvas
from .patient import Patient
from .scan import EXTENTS, Acquisition, draw_acquisition, scan_range
from .scanner import Reconstruction, render, texture_field
from .shapes import Item
from .vertebra_templates import VertebraTemplates
from .vertebrae import VARIANTS, VERTEBRA_NAMES, draw_variant


@dataclass
class Phantom:
    """A synthetic CT scan with its ground truth.

    Attributes:
        volume: the CT volume (int16 HU voxels ``[k, j, i]``, RAS geometry, source ``"phantom:<seed>"``).
        vertebra_labels: uint8 VerSe ids, same shape as the voxels (bodies + posterior elements).
        level_ranges: inclusive stored-``k`` slice range of every vertebra name whose label is present.
        l3_range: inclusive stored-``k`` range where L3 (label 22) is the majority vertebra label
            (:func:`~l3locator.labels.l3_range_from_vertebra_map`, as training reads label maps), or None.
        params: the random anatomy and acquisition that were drawn (JSON-serialisable), among them
            ``extent``, ``variant``, ``rib_bearing`` (names of the rib-bearing vertebrae), ``l3_cut_by``
            (``"lower"``/``"upper"`` for ``l3_edge``, else None), ``contrast``, ``arms_down``, ``hu``
            (tissue values) and ``vertebral_bodies_ras_z_mm`` (RAS z of each body's lower/upper endplate
            at its centre).
        body_ranges: like ``level_ranges`` but for the vertebral bodies alone (no posterior elements).
    """

    volume: CTVolume
    vertebra_labels: np.ndarray
    level_ranges: dict[str, tuple[int, int]]
    l3_range: tuple[int, int] | None
    params: dict
    body_ranges: dict[str, tuple[int, int]] = field(default_factory=dict)


def _slice_ranges(present: np.ndarray, flip: bool) -> dict[str, tuple[int, int]]:
    """``{name: (first, last)}`` stored slice ranges from a ``[slice, label]`` presence table."""
    n = present.shape[0]
    out: dict[str, tuple[int, int]] = {}
    for label in range(1, present.shape[1]):
        ks = np.flatnonzero(present[:, label])
        if ks.size and label in VERTEBRA_NAMES:
            k0, k1 = int(ks[0]), int(ks[-1])
            out[VERTEBRA_NAMES[label]] = (n - 1 - k1, n - 1 - k0) if flip else (k0, k1)
    return out


def _jsonable(value: Any) -> Any:
    """Plain Python (JSON-serialisable) copy of ``value`` (numpy scalars, tuples)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.floating, float)):
        return float(value)
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    return value


def _checked_size(shape_ij: tuple[int, int], extent: str, variant: str | None, slice_thickness_mm: float | None,
                  pixel_spacing_mm: float | None) -> tuple[int, int]:
    """``(n_i, n_j)``; raises :class:`ValueError` for an argument :func:`generate_phantom` cannot honour."""
    if extent not in EXTENTS:
        raise ValueError(f"extent must be one of {EXTENTS}, got {extent!r}")
    if variant is not None and variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS} or None, got {variant!r}")
    ni, nj = (int(s) for s in shape_ij)
    if ni < 16 or nj < 16:
        raise ValueError(f"shape_ij must be at least 16 x 16, got {shape_ij}")
    if slice_thickness_mm is not None and not slice_thickness_mm > 0:
        raise ValueError(f"slice_thickness_mm must be positive, got {slice_thickness_mm}")
    if pixel_spacing_mm is not None and not pixel_spacing_mm > 0:
        raise ValueError(f"pixel_spacing_mm must be positive, got {pixel_spacing_mm}")
    return ni, nj


@dataclass
class Scene:
    """Everything a phantom is painted from, before any slice is painted (torso mm, HU).

    Attributes:
        patient, acquisition: the drawn anatomy and acquisition.
        extent, thickness_mm, noise_hu, pixel_mm, arms_down: the acquisition as used (arguments
            override the drawn values).
        lowest_z_mm, num_slices, l3_cut_by: the slices (:func:`~l3locator.phantoms.scan.scan_range`).
        items: what is painted, in painting order (the table first when there is one).
        canvas: the slice canvas (texture drawn, diaphragm set).
        noise_rng: the noise generator, after the texture's draw (the reconstruction draws next).
        shapes_dealt: level -> level whose real shape paints it, where the template shapes were
            dealt (:meth:`~l3locator.phantoms.vertebra_templates.VertebraTemplates.with_shapes_dealt`).
    """

    patient: Patient
    acquisition: Acquisition
    extent: str
    thickness_mm: float
    noise_hu: float
    pixel_mm: float
    arms_down: bool
    lowest_z_mm: float
    num_slices: int
    l3_cut_by: str | None
    items: list[Item]
    canvas: Canvas
    noise_rng: np.random.Generator
    shapes_dealt: dict[str, str] = field(default_factory=dict)


def build_scene(seed: int, ni: int, nj: int, slice_thickness_mm: float | None, pixel_spacing_mm: float | None, extent: str,
                noise_hu: float | None, variant: str | None, templates: VertebraTemplates | list[VertebraTemplates] | None = None,
                deal_shapes_rate: float = 0.0) -> Scene:
    """Draw the patient and the acquisition from ``seed`` and lay out the items and the canvas
    (arguments as :func:`generate_phantom`'s, checked); the same seed and arguments give the same scene."""
    # the fifth stream is drawn only for the shapes: the first four are the same as without it
    anatomy_rng, acquisition_rng, noise_rng, pose_rng, shape_rng = np.random.default_rng(seed).spawn(5)
    if isinstance(templates, list):
        templates = VertebraTemplates.drawn_from(templates, shape_rng) if templates else None
    shapes_dealt: dict[str, str] = {}
    if templates is not None and shape_rng.random() < deal_shapes_rate:
        templates = templates.with_shapes_dealt(shape_rng)
        shapes_dealt = dict(templates.shape_of)
    drawn_variant = draw_variant(anatomy_rng)
    patient = Patient(anatomy_rng, variant or drawn_variant)
    acq = draw_acquisition(acquisition_rng)

    extent = acq.extent if extent == "random" else extent
    thickness = float(slice_thickness_mm) if slice_thickness_mm is not None else acq.thickness_mm
    noise = float(noise_hu) if noise_hu is not None else acq.noise_hu
    z_lo, n, edge = scan_range(patient, extent, acq.range_fractions, thickness)
    z_hi = z_lo + (n - 1) * thickness
    outline = patient.torso.outline(np.linspace(z_lo, z_hi, 64))
    offset = acq.torso_offset_mm
    if pixel_spacing_mm is None:
        fov = min(max(acq.fov_mm, 2.0 * (float(np.max(outline.half_width_mm)) + abs(offset[0])) * 1.04), 500.0)
        px = fov / max(ni, nj)
    else:
        px = float(pixel_spacing_mm)
    arms_down = acq.arms_down(extent)
    items: list[Item] = [Table(offset[1] - float(np.max(outline.back_mm)) - acq.table_gap_mm, acq.table_hu)] if acq.has_table else []
    anatomy, diaphragm = build_items(patient, z_lo - thickness, pose_rng, arms_down, templates)
    items += anatomy

    canvas = Canvas(ni, nj, px, math.radians(patient.params["roll_deg"]), offset, thickness, texture_field(noise_rng, nj, ni, px))
    canvas.diaphragm = diaphragm
    return Scene(patient, acq, extent, thickness, noise, px, arms_down, z_lo, n, edge, items, canvas, noise_rng, shapes_dealt)


def generate_phantom(seed: int, *, shape_ij: tuple[int, int] = (128, 128), slice_thickness_mm: float | None = None,
                     pixel_spacing_mm: float | None = None, extent: str = "abdomen", noise_hu: float | None = None,
                     variant: str | None = None, superior_first: bool = False,
                     vertebra_templates: VertebraTemplates | list[VertebraTemplates] | None = None,
                     deal_shapes_rate: float = 0.0) -> Phantom:
    """Draw a synthetic CT scan and its vertebra labels from ``seed`` (same seed, same voxels).

    Args:
        seed: random seed; the anatomy depends on it alone (not on the acquisition arguments).
        shape_ij: in-plane size ``(n_i, n_j)``: columns (patient right to left), rows (anterior to posterior).
        slice_thickness_mm: slice thickness = spacing (mm); drawn from
            :data:`~l3locator.phantoms.scan.THICKNESSES_MM` when None.
        pixel_spacing_mm: in-plane pixel size (mm); when None the field of view (330-500 mm, widened
            to hold the body) is spread over the larger of the two in-plane sizes.
        extent: ``"abdomen"`` (about T10 to the sacrum or hips, L3 always whole), ``"chest"`` (C6-T1 to
            T12-L1, no L3), ``"whole_body"`` (neck to hips), ``"l3_edge"`` (L3 cut by the lower or
            upper scan edge: label 22 touches the first or last slice) or ``"random"`` (drawn).
        noise_hu: standard deviation of the image noise (HU); drawn in 8-30 when None.
        variant: one of :data:`~l3locator.phantoms.vertebrae.VARIANTS` to force it; None draws
            ``"normal"`` 87% of the time (see :mod:`l3locator.phantoms` for how L3 is defined in each variant).
        superior_first: store slices head-first (``k`` toward inferior); ranges then count stored slices.
        vertebra_templates: real vertebra shapes for the levels they hold (None: analytic shapes
            everywhere); the same seed draws the same patient either way. Several patients'
            templates (a list): each level's shape drawn from those that hold it, per seed
            (:meth:`~l3locator.phantoms.vertebra_templates.VertebraTemplates.drawn_from`).
        deal_shapes_rate: share of phantoms (a draw per seed) whose L2-L4 take the template shapes
            of those three levels in a random order (``params["vertebra_shapes_dealt"]`` says
            which); 0 paints each level with its own. Needs ``vertebra_templates``; the rest of
            the phantom is the same either way.

    Returns:
        A :class:`Phantom` with int16 HU voxels ``[k, j, i]`` and its uint8 VerSe label map.
    """
    ni, nj = _checked_size(shape_ij, extent, variant, slice_thickness_mm, pixel_spacing_mm)
    if not 0.0 <= deal_shapes_rate <= 1.0:
        raise ValueError(f"deal_shapes_rate must be in [0, 1], got {deal_shapes_rate}")
    scene = build_scene(seed, ni, nj, slice_thickness_mm, pixel_spacing_mm, extent, noise_hu, variant, vertebra_templates, deal_shapes_rate)
    patient, acq, canvas, px, thickness = scene.patient, scene.acquisition, scene.canvas, scene.pixel_mm, scene.thickness_mm
    z_lo, n = scene.lowest_z_mm, scene.num_slices
    z_hi = z_lo + (n - 1) * thickness
    voxels, labels, body_present = render(canvas, scene.items, z_lo, n, Reconstruction(px, scene.noise_hu, scene.noise_rng, acq.noise_grain_mm))

    present = np.stack([np.bincount(labels[k].ravel(), minlength=256) > 0 for k in range(n)])
    shift = acq.origin_shift_mm
    ijk_to_ras = np.diag([-px, -px, thickness, 1.0])
    ijk_to_ras[:3, 3] = (canvas.x_first_column + shift[0], canvas.y_first_row + shift[1], z_lo + shift[2])
    if superior_first:
        voxels, labels = voxels[::-1].copy(), labels[::-1].copy()
        ijk_to_ras[2, 2] = -thickness
        ijk_to_ras[2, 3] = z_hi + shift[2]

    params = {
        "seed": seed, "extent": scene.extent, "l3_cut_by": scene.l3_cut_by, "variant": patient.variant, "shape_ij": [ni, nj],
        "slice_thickness_mm": thickness, "pixel_spacing_mm": px, "num_slices": n, "noise_hu": scene.noise_hu, "noise_grain_mm": acq.noise_grain_mm, "table": acq.has_table,
        "arms_down": scene.arms_down, "superior_first": superior_first, "torso_offset_mm": list(acq.torso_offset_mm), "hu": patient.hu,
        **{k: v for k, v in patient.params.items() if k != "variant"},
        "vertebral_bodies_ras_z_mm": {v.name: [v.bottom_mm + shift[2], v.top_mm + shift[2]] for v in patient.vertebrae},
        "ras_z_shift_mm": shift[2],
        **({"vertebra_shapes_dealt": scene.shapes_dealt} if scene.shapes_dealt else {}),
    }
    volume = CTVolume(voxels, ijk_to_ras, source=f"phantom:{seed}", metadata={"modality": "CT", "phantom": True})
    return Phantom(volume=volume, vertebra_labels=labels, level_ranges=_slice_ranges(present, superior_first),
                   l3_range=l3_range_from_vertebra_map(labels), params=_jsonable(params), body_ranges=_slice_ranges(body_present, superior_first))
