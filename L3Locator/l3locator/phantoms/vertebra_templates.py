"""Real vertebra shapes for the phantoms: a labelled vertebra mask turned into one template per level.

The analytic spine (:mod:`.spine`) draws every vertebra from ellipses and rods. Given a real
segmentation such as VerSe's ``sub-verse004`` mask (T9-L5, CC BY-SA 4.0: Sekuboyina et al. 2021,
Löffler et al. 2020), the levels it holds are painted from their real shapes instead: body with
concave endplates, pedicles, laminae, facets, transverse and spinous processes, each as that
patient had them at that level, rescaled to the phantom's vertebra and tilted to its spine curve
(:class:`TemplateVertebra`). The mask is read at generation time and never copied into phantoms'
code; without one the analytic shapes are used.

Template frame (mm): x toward the patient's right, y anterior, z superior, origin at the centre of
the vertebral body (between its endplates, at its mid-depth).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .canvas import Canvas
from .shapes import Item
from .vertebrae import VERSE_IDS, VERTEBRA_NAMES, Vertebra

#: Grid spacing of the templates (mm, isotropic).
TEMPLATE_SPACING_MM = 1.0
#: Thickness of the cortical shell painted inside the template's surface (mm).
CORTEX_MM = 1.5
#: Levels used for the transitional vertebrae a mask does not hold (13th thoracic, 6th lumbar).
_STAND_INS = {"T13": "T12", "L6": "L5"}
#: Share of a vertebra's anteroposterior extent (anterior wall to spinous tip) from the anterior
#: wall to the body's centre (measured on sub-verse004: 0.23-0.26 from T9 to L5).
_BODY_CENTRE_DEPTH_SHARE = 0.24
#: A level whose body is lower than this share of its neighbours' mean height counts as collapsed.
_COLLAPSED_HEIGHT_SHARE = 0.75
#: The levels whose shapes :meth:`VertebraTemplates.with_shapes_dealt` deals among themselves: L3
#: and the neighbours a network confuses it with.
DEALT_LEVELS = ("L2", "L3", "L4")


@dataclass(frozen=True)
class VertebraTemplate:
    """One level's shape on a 1 mm grid in the template frame (see the module docstring).

    Attributes:
        name: the level (``"L3"``...).
        depth_mm: float32 ``[z, y, x]`` signed distance to the vertebra's surface (mm, > 0 inside).
        body: bool ``[z, y, x]``, the vertebral body (anterior to the pedicles).
        origin_mm: template-frame ``(z, y, x)`` of voxel ``[0, 0, 0]``.
        body_half_width_mm, body_half_depth_mm, body_height_mm: the body's size (height at its rim).
        endplate_slope: dz/dy of the body's endplates.
    """

    name: str
    depth_mm: np.ndarray
    body: np.ndarray
    origin_mm: tuple[float, float, float]
    body_half_width_mm: float
    body_half_depth_mm: float
    body_height_mm: float
    endplate_slope: float

    def sample(self, z: np.ndarray, y: np.ndarray, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Depth (mm, linear interpolation, -10 outside the grid) and body membership at template-frame points."""
        coords = np.stack([(z - self.origin_mm[0]), (y - self.origin_mm[1]), (x - self.origin_mm[2])]) / TEMPLATE_SPACING_MM
        depth = ndimage.map_coordinates(self.depth_mm, coords, order=1, cval=-10.0)
        body = ndimage.map_coordinates(self.body, coords, order=0, cval=0).astype(bool)
        return depth, body


class VertebraTemplates:
    """The templates of every level a labelled mask holds (VerSe ids), by level name.

    ``shape_of`` maps a level to the level whose template paints it (:meth:`with_shapes_dealt`);
    a level it does not name is painted with its own.
    """

    def __init__(self, templates: dict[str, VertebraTemplate], source: str, shape_of: dict[str, str] | None = None):
        self.templates, self.source = templates, source
        self.shape_of = dict(shape_of or {})

    def with_shapes_dealt(self, rng: np.random.Generator, levels: tuple[str, ...] = DEALT_LEVELS) -> VertebraTemplates:
        """The same templates with the shapes of ``levels`` dealt to those levels in a random order.

        One mask is one patient: painted level by level, its L3's own posterior elements and
        proportions become the mark of L3 in every phantom, a cue no other patient shares. Dealing
        the shapes of L2-L4 at random among them leaves the level to be told from what does carry
        over between patients (neighbouring levels, ribs, sacrum, pelvis, organs). The bodies are
        still scaled to each level's own size. Levels the mask lacks keep their stand-ins.
        Measured (``bench/results/ablation_level_cues.md``): a network fine-tuned on dealt shapes
        scores L2, L3 and L4 alike on a real abdomen; the shape is the cue that transfers.
        """
        sources = [self.for_vertebra(level) for level in levels]
        if any(template is None for template in sources):
            return self
        order = rng.permutation(len(levels))
        dealt = {level: sources[k].name for level, k in zip(levels, order)}
        return VertebraTemplates(self.templates, self.source, {**self.shape_of, **dealt})

    @classmethod
    def from_mask(cls, path: str | os.PathLike) -> VertebraTemplates:
        """Templates from a NIfTI vertebra label map with VerSe ids (any orientation; reoriented to RAS).
        Levels the mask's edge cuts off are left out, and so are collapsed ones."""
        import nibabel as nib

        image = nib.as_closest_canonical(nib.load(os.fspath(path)))
        labels = np.asarray(image.dataobj).astype(np.int16)  # [x right, y anterior, z superior]
        spacing = np.asarray(image.header.get_zooms()[:3], dtype=np.float64)
        templates = {}
        for label in np.unique(labels):
            name = VERTEBRA_NAMES.get(int(label))
            if name is None or name == "sacrum" or _touches_edge(labels == label):
                continue  # not a vertebra, or one the mask's edge cuts off (not a whole shape)
            template = _template_from_mask(name, labels == label, spacing)
            if template is not None:
                templates[name] = template
        if not templates:
            raise ValueError(f"{path}: no vertebra labels (VerSe ids) to make templates from")
        return cls(_without_collapsed(templates), os.fspath(path))

    @classmethod
    def drawn_from(cls, sets: list[VertebraTemplates], rng: np.random.Generator) -> VertebraTemplates:
        """One spine from several patients' templates: each level's shape drawn at random from the
        ``sets`` that hold that level (a level's stand-ins are then those of the spine drawn).
        With one set, that set itself (no draw)."""
        if len(sets) == 1:
            return sets[0]
        levels = sorted({name for templates in sets for name in templates.templates}, key=VERSE_IDS.__getitem__)
        drawn = {}
        for name in levels:
            holders = [templates for templates in sets if name in templates.templates]
            drawn[name] = holders[int(rng.integers(len(holders)))].templates[name]
        return cls(drawn, " + ".join(templates.source for templates in sets))

    def for_vertebra(self, name: str) -> VertebraTemplate | None:
        """The template that paints level ``name`` (its own, or the one :attr:`shape_of` names), or
        None outside the mask's levels. T13 uses T12's, L6 L5's, and a level dropped as collapsed
        the next one below it."""
        name = self.shape_of.get(name, name)
        name = _STAND_INS.get(name, name)
        if name not in VERSE_IDS or not self.templates:
            return None
        ids = sorted(VERSE_IDS[n] for n in self.templates)
        wanted = VERSE_IDS[name]
        if not ids[0] <= wanted <= ids[-1]:
            return None
        below = min(i for i in ids if i >= wanted)
        return self.templates[VERTEBRA_NAMES[below]]


def _touches_edge(mask: np.ndarray) -> bool:
    """Whether a boolean mask reaches the first or last voxel along any axis."""
    return any(mask.take(0, axis=axis).any() or mask.take(-1, axis=axis).any() for axis in range(mask.ndim))


def _without_collapsed(templates: dict[str, VertebraTemplate]) -> dict[str, VertebraTemplate]:
    """``templates`` less the levels whose body is under 75 % of its neighbours' mean height (a
    wedge or compression fracture is not a normal level's shape; sub-verse004's L1 is one)."""
    names = sorted(templates, key=VERSE_IDS.__getitem__)
    kept = {}
    for n, name in enumerate(names):
        neighbours = [templates[names[m]].body_height_mm for m in (n - 1, n + 1) if 0 <= m < len(names)]
        if not neighbours or templates[name].body_height_mm >= _COLLAPSED_HEIGHT_SHARE * float(np.mean(neighbours)):
            kept[name] = templates[name]
    return kept


def _template_from_mask(name: str, mask: np.ndarray, spacing: np.ndarray) -> VertebraTemplate | None:
    """One level's template from its boolean mask ``[x, y, z]`` with voxel ``spacing`` (mm)."""
    found = np.argwhere(mask)
    if len(found) < 100:
        return None
    lo, hi = np.maximum(found.min(0) - 2, 0), np.minimum(found.max(0) + 3, mask.shape)
    crop = mask[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]].astype(np.float32)
    iso = ndimage.zoom(crop, spacing / TEMPLATE_SPACING_MM, order=1) > 0.5
    iso = ndimage.binary_fill_holes(np.pad(iso, 3))  # [x, y, z], 3 voxels of background around
    grid = np.transpose(iso, (2, 1, 0))  # [z, y, x]
    zs, ys, xs = np.nonzero(grid)
    y_front, y_back = float(ys.max()), float(ys.min())
    y_centre = y_front - _BODY_CENTRE_DEPTH_SHARE * (y_front - y_back)
    half_depth = y_front - y_centre
    in_body = ys >= y_centre - half_depth
    body_z, body_y, body_x = zs[in_body], ys[in_body], xs[in_body]
    x_centre = float(np.median(body_x))
    lo_x, hi_x = np.percentile(body_x[body_y >= y_centre], [1, 99])  # the anterior half: no processes
    slope, z_centre, height = _endplates(grid, body_z, body_y, body_x, x_centre, y_centre, half_depth)
    body = np.zeros_like(grid)
    body[body_z, body_y, body_x] = True
    depth = (ndimage.distance_transform_edt(grid) - ndimage.distance_transform_edt(~grid)).astype(np.float32) * TEMPLATE_SPACING_MM
    origin = (-z_centre * TEMPLATE_SPACING_MM, -y_centre * TEMPLATE_SPACING_MM, -x_centre * TEMPLATE_SPACING_MM)
    return VertebraTemplate(name, depth, body, origin, (hi_x - lo_x) / 2 * TEMPLATE_SPACING_MM, half_depth * TEMPLATE_SPACING_MM,
                            height * TEMPLATE_SPACING_MM, slope)


def _endplates(grid: np.ndarray, zs: np.ndarray, ys: np.ndarray, xs: np.ndarray, x_centre: float, y_centre: float,
               half_depth: float) -> tuple[float, float, float]:
    """Endplate slope (dz/dy), the body's mid height at its centre and its rim height (grid units),
    from the top and bottom of the body's voxels in its mid-sagittal band."""
    band = np.abs(xs - x_centre) <= 6
    tops, bottoms, rows = [], [], []
    for y in range(int(y_centre - 0.6 * half_depth), int(y_centre + 0.8 * half_depth) + 1):
        column = zs[band & (ys == y)]
        if len(column) >= 20:
            rows.append(y)
            tops.append(column.max())
            bottoms.append(column.min())
    rows_a, tops_a, bottoms_a = np.asarray(rows, float), np.asarray(tops, float), np.asarray(bottoms, float)
    slope = float(np.mean([np.polyfit(rows_a, tops_a, 1)[0], np.polyfit(rows_a, bottoms_a, 1)[0]]))
    middle = np.polyval(np.polyfit(rows_a, (tops_a + bottoms_a) / 2, 1), y_centre)
    height = float(np.percentile(tops_a - bottoms_a, 75)) + 1.0
    return slope, float(middle), height


class TemplateVertebra(Item):
    """A whole vertebra (body and posterior elements) painted from a real template.

    The template is scaled to ``vertebra``'s body (width, depth, height) and its own endplate tilt
    is replaced by the phantom's (``vertebra.endplate_slope``). Each slice averages the shape over
    sub-slices of its slab (partial volume along z); the cortex is the outer ``CORTEX_MM`` of it.
    """

    def __init__(self, vertebra: Vertebra, template: VertebraTemplate, cortex_hu: float, cancellous_hu: float):
        self.v, self.t = vertebra, template
        self.cortex_hu, self.cancellous_hu = cortex_hu, cancellous_hu
        self.scale_x = vertebra.half_width_mm / template.body_half_width_mm
        self.scale_y = vertebra.half_depth_mm / template.body_half_depth_mm
        self.scale_z = vertebra.height_mm / template.body_height_mm
        nz, ny, nx = template.depth_mm.shape
        oz, oy, ox = template.origin_mm
        ys = np.array([oy, oy + ny - 1]) * self.scale_y
        xs = np.array([ox, ox + nx - 1]) * self.scale_x
        self.centre = (vertebra.x_mm + float(xs.mean()), vertebra.y_mm + float(ys.mean()))
        self.radius = float(math.hypot(xs[1] - xs[0], ys[1] - ys[0]) / 2)
        reach = max(abs(oz), abs(oz + nz - 1)) * self.scale_z + abs(vertebra.endplate_slope - template.endplate_slope) * self.radius
        self.zmin, self.zmax = vertebra.mid_mm - reach - 2.0, vertebra.mid_mm + reach + 2.0

    def paint(self, c: Canvas) -> None:
        win = c.window(self.centre[0], self.centre[1], self.radius)
        if win is None:
            return
        v, t = self.v, self.t
        x = (c.torso_x[win] - v.x_mm) / self.scale_x
        dy = c.torso_y[win] - v.y_mm
        y = dy / self.scale_y
        in_plane_scale = (self.scale_x + self.scale_y) / 2
        subslices = min(max(int(math.ceil(c.thickness / 1.25)), 1), 4)
        bone = np.zeros(x.shape, np.float32)
        marrow = np.zeros(x.shape, np.float32)
        for s in range(subslices):
            z_mm = c.slab_bottom + (s + 0.5) * c.thickness / subslices
            z = (z_mm - v.mid_mm - v.endplate_slope * dy) / self.scale_z + t.endplate_slope * y
            depth, _ = t.sample(z, y, x)
            depth *= in_plane_scale
            bone += np.clip(depth / c.pixel_mm + 0.5, 0.0, 1.0)
            marrow += np.clip((depth - CORTEX_MM) / c.pixel_mm + 0.5, 0.0, 1.0)
        c.composite(win, bone / subslices, self.cortex_hu)
        c.composite(win, marrow / subslices, self.cancellous_hu, 35.0)
        z_centre = (c.z - v.mid_mm - v.endplate_slope * dy) / self.scale_z + t.endplate_slope * y
        depth, body = t.sample(z_centre, y, x)
        inside = depth > 0
        c.label(win, inside, v.label)
        c.label(win, inside & body, v.label, body=True)

