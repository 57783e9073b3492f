"""Count the vertebral levels of the one real scan that shows the whole lumbar spine, and write
the pictures the count was made on (issue 16: a real check of L3 against L2/L4).

``../shared/data/real/acrin_flt_breast001_abdomen_ct.nii.gz`` (TCIA ACRIN-FLT-Breast 001, low-dose
CT of a PET/CT, 0.98 x 0.98 x 4.25 mm, about T11 to the hips) has no labels. L3 is counted twice,
independently, by a person reading the pictures this script writes:

* ``coronal_mip.png``: maximum intensity over the posterior half of the trunk (ribs, transverse
  processes, iliac crests, sacrum) with slice indices;
* ``sagittal_bodies.png``: a 9-voxel sagittal slab through the vertebral bodies (bone window),
  where the discs are the dark bands between endplates, with slice indices;
* ``labelled.png``: both views side by side with the counted levels drawn.

The script also prints the mean HU inside the vertebral-body column per slice: discs are its local
minima, a check of the disc slices read from the sagittal picture. The counted levels
(:data:`DISC_SLICES`, :data:`LEVELS`) are the reading recorded in ``acrin_level_count.md``; this
script draws them, it does not decide them.

    python bench/acrin_level_count.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from l3locator import load_ct

SCAN = Path(__file__).resolve().parents[2] / "shared" / "data" / "real" / "acrin_flt_breast001_abdomen_ct.nii.gz"
OUTPUT = Path(__file__).resolve().parent / "results" / "acrin_level_count"
#: Voxel column (i, RAS x index) through the middle of the vertebral bodies, and the posterior
#: (j) range of the bodies and of the coronal slab, read from the axial slices.
SPINE_I = 268
BODY_J = (185, 225)
CORONAL_SLAB_J = (150, 260)
#: Disc slices read from ``sagittal_bodies.png`` (dark bands between bright endplates),
#: from L5/S1 up to T11/T12.
DISC_SLICES = (30, 38, 46, 55, 63, 71, 79)
#: Vertebral bodies between those discs, from the sacrum up (inclusive slice ranges).
LEVELS = {"L5": (31, 37), "L4": (39, 45), "L3": (47, 54), "L2": (56, 62), "L1": (64, 70), "T12": (72, 78)}


def window(values: np.ndarray, low: float, high: float) -> np.ndarray:
    return (np.clip((values - low) / (high - low), 0.0, 1.0) * 255).astype(np.uint8)


def picture(plane: np.ndarray, pixel_mm: float, slice_mm: float, scale: float) -> Image.Image:
    """A ``[k, x]`` plane as an RGB picture, superior up, at ``scale`` pixels per in-plane voxel."""
    height = int(plane.shape[0] * slice_mm / pixel_mm * scale)
    return Image.fromarray(plane[::-1]).resize((int(plane.shape[1] * scale), height), Image.NEAREST).convert("RGB")


def slice_ruler(image: Image.Image, num_slices: int, first: int, levels: dict[str, tuple[int, int]] | None = None) -> Image.Image:
    """``image`` with slice indices on a margin at its left, and ``levels`` drawn as brackets."""
    margin = 70
    out = Image.new("RGB", (image.width + margin, image.height))
    out.paste(image, (margin, 0))
    draw = ImageDraw.Draw(out)
    row = image.height / num_slices

    def y_of(k: float) -> float:
        return (first + num_slices - 1 - k + 0.5) * row

    for k in range(first, first + num_slices):
        draw.line([(margin - (14 if k % 5 == 0 else 6), y_of(k)), (margin - 1, y_of(k))], fill=(255, 0, 0))
        if k % 5 == 0:
            draw.text((2, y_of(k) - 6), str(k), fill=(255, 255, 0))
    for name, (low, high) in (levels or {}).items():
        top, bottom = y_of(high) - row / 2, y_of(low) + row / 2
        colour = (0, 255, 0) if name == "L3" else (0, 170, 255)
        draw.rectangle([margin + 2, top, out.width - 3, bottom], outline=colour)
        draw.text((margin + 6, top + 2), name, fill=colour)
    return out


def main() -> int:
    if not SCAN.is_file():
        print(f"{SCAN} not found (../shared is absent)", file=sys.stderr)
        return 1
    volume = load_ct(SCAN)
    hu = volume.voxels.astype(np.float32)
    pixel_mm, slice_mm = abs(float(volume.ijk_to_ras[0, 0])), volume.slice_thickness
    first, last = 25, 90
    OUTPUT.mkdir(parents=True, exist_ok=True)

    coronal = hu[first:last, CORONAL_SLAB_J[0] : CORONAL_SLAB_J[1], 150:390].max(axis=1)
    coronal_picture = picture(window(coronal, -100, 1200), pixel_mm, slice_mm, 2.0)
    sagittal = hu[first:last, 170:240, SPINE_I - 4 : SPINE_I + 5].mean(axis=2)
    sagittal_picture = picture(window(sagittal, 0, 450), pixel_mm, slice_mm, 3.0)
    slice_ruler(coronal_picture, last - first, first).save(OUTPUT / "coronal_mip.png")
    slice_ruler(sagittal_picture, last - first, first).save(OUTPUT / "sagittal_bodies.png")
    both = Image.new("RGB", (coronal_picture.width + sagittal_picture.width + 10, coronal_picture.height))
    both.paste(coronal_picture, (0, 0))
    both.paste(sagittal_picture.resize((sagittal_picture.width, coronal_picture.height)), (coronal_picture.width + 10, 0))
    slice_ruler(both, last - first, first, LEVELS).save(OUTPUT / "labelled.png")

    column = hu[:, BODY_J[0] : BODY_J[1], SPINE_I - 6 : SPINE_I + 7].mean(axis=(1, 2))
    minima = [k for k in range(first + 1, last - 1) if column[k] < column[k - 1] and column[k] <= column[k + 1]]
    print("mean HU in the vertebral-body column (slice: HU):")
    print(", ".join(f"{k}: {column[k]:.0f}" for k in range(first, last)))
    print(f"local minima: {minima}")
    print(f"recorded disc slices: {list(DISC_SLICES)}; each within 1 slice of a local minimum: "
          f"{all(any(abs(d - m) <= 1 for m in minima) for d in DISC_SLICES)}")
    print(f"L3: slices {LEVELS['L3'][0]}-{LEVELS['L3'][1]}, middle {sum(LEVELS['L3']) / 2}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
