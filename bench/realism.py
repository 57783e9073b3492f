"""Realism check (issue 16): real CT next to the training phantoms, as numbers and as the network sees them.

    python bench/realism.py --model A.pt [--model B.pt ...] [--phantom-size 256]

Writes ``results/realism.md`` (tables) and, under ``results/realism/``:

* ``network_view_<model>.png``: the middle slice of the L2, L3 and L4 bodies of the real ACRIN
  abdomen (levels counted in ``acrin_level_count.md``) and of two held-out abdomen phantoms (5 mm
  and 2.5 mm; levels from their label maps): every input channel the model gets (its own
  preprocessing, :func:`~l3locator.preprocessing.preprocess_volume` and
  :func:`~l3locator.preprocessing.assemble_inputs`), then the raw slice in a soft-tissue window
  (W400/L40) and a bone window (W1500/L300), drawn to one millimetre scale so body sizes and fields
  of view compare; each row is titled with the model's L3 probability of that slice.
* ``hu_histograms.png``: HU histograms of the body (fat and soft-tissue peaks) and of the
  vertebral bone core, real scans against phantoms of varied settings.
* ``profiles_<model>.png``: the model's per-slice L3 probability on every real scan in
  ``../shared/data/real`` (and the two phantoms for reference), exhaustive float32 scoring as
  ``l3locator find --exhaustive``, with the labelled or counted L3 shaded (L2/L4 lighter) and the
  answer marked.

Measured regions (units: HU, mm):

* **Slices**: the lumbar spine (L1-L5 from the label map, the counted ACRIN levels, the phantom's
  label map); a scan without lumbar labels (the chest CTs) uses every slice.
* **Body**: per slice, voxels above -400 HU (after a 1-pixel Gaussian), largest connected part,
  holes filled, so the table and the air outside are left out. Fat = body voxels in -190..-30 HU,
  soft tissue = -29..150 HU (the body-composition ranges).
* **Bone core**: lumbar vertebra voxels (VerSe ids 20-25) at least 3 mm inside the vertebra's
  outline in the axial plane (cancellous body, the thick parts of pedicles and spinous process);
  for the unlabelled ACRIN scan the vertebra is segmented by a threshold (> 120 HU after a
  1-pixel Gaussian, holes filled, the filled spinal canal (< 60 HU) left out, the part containing
  the body centre read in ``acrin_level_count.py``) on its L1-L5 body slices.
* **Noise**: the median local standard deviation (window about 5 mm) where the local mean
  (window about 9 mm) lies in 20..80 HU (muscle, organs) or -150..-60 HU (fat) and differs from
  the 5 mm mean by less than 8 HU, inside the body eroded by 5 mm (native pixels). **Texture**:
  the correlation of horizontally adjacent pixels of the soft-tissue residual (image minus its
  5 mm mean) there: about 0 for white noise, higher for CT-like (spatially correlated) noise,
  whose grain spans ``pixel_mm`` times more pixels. The soft-tissue noise is also measured on
  the slice resized as the preprocessing does to 128 x 128 pixels (3 and 5 pixel windows): the
  noise the 128 px network sees, before the contrast stretch.
* **Contrast stretch**: on that resized slice, clipped to [-200, 1500] HU, the 99th percentile
  (the HU the preprocessing's 1-99 % stretch shows as white; median over the slices) and the
  share of the image above 200 HU (bone, contrast, the table), which sets it.
"""

from __future__ import annotations

import argparse
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from scipy import ndimage  # noqa: E402

from accuracy import HELD_OUT_SEED, SHARED_DATA, real_cases  # noqa: E402
from acrin_level_count import BODY_J, LEVELS, SPINE_I  # noqa: E402
from l3locator.atomic import write_atomically  # noqa: E402
from l3locator.modelfile import L3Model, load_model  # noqa: E402
from l3locator.phantoms import generate_phantom  # noqa: E402
from l3locator.pipeline import find_l3  # noqa: E402
from l3locator.preprocessing import PreprocessingConfig, assemble_inputs, preprocess_volume  # noqa: E402
from l3locator.reading import load_ct  # noqa: E402
from l3locator.volume import CTVolume  # noqa: E402

OUTPUT = Path(__file__).resolve().parent / "results" / "realism"
ACRIN = "acrin_flt_breast001_abdomen_ct"  # the one real scan with L2, L3 and L4 whole (counted)
#: (seed offset from HELD_OUT_SEED, extent, slice thickness mm): the first two are drawn in
#: ``network_view`` and scored in the profiles (the accuracy benchmark's first two phantoms).
PHANTOMS = ((0, "abdomen", 5.0), (1, "abdomen", 2.5), (2, "abdomen", 1.25), (3, "whole_body", 3.0), (6, "abdomen", 5.0), (7, "abdomen", 2.5))
VIEW_PHANTOMS = 2
LUMBAR_IDS = (20, 21, 22, 23, 24, 25)  # VerSe L1-L5, L6
LEVEL_IDS = {"L1": 20, "L2": 21, "L3": 22, "L4": 23, "L5": 24}
FAT_HU, SOFT_HU = (-190.0, -30.0), (-29.0, 150.0)
BONE_CORE_MM = 3.0
SOFT_NOISE_HU, FAT_NOISE_HU = (20.0, 80.0), (-150.0, -60.0)
#: Largest difference (HU) between a pixel's ~5 mm and ~9 mm means for it to count as homogeneous.
HOMOGENEOUS_HU = 8.0
#: In-plane size (pixels) of the network input at which the noise is also measured (the ResNet18's 128).
NETWORK_PIXELS = 128
#: The preprocessing's HU clip (the defaults, the paper's [-200, 1500]).
PREPROCESSING_HU = (PreprocessingConfig().hu_min, PreprocessingConfig().hu_max)
WINDOWS = {"W400/L40": (-160.0, 240.0), "W1500/L300": (-450.0, 1050.0)}
#: Section of realism.md written by hand (what the pictures show); kept when the script rewrites the file.
READING_HEADING = "## Reading"
#: Paragraph the script writes under READING_HEADING when the file has none yet.
READING_PLACEHOLDER = "(Not written yet: look at the pictures and describe what differs between real and phantom.)"


@dataclass
class Scan:
    """One scan to compare: its HU volume, vertebra labels (VerSe ids, or None) and slice ranges."""

    name: str
    kind: str  # real | phantom
    volume: CTVolume
    labels: np.ndarray | None
    levels: dict[str, tuple[int, int]]  # vertebral levels: inclusive slice ranges (bodies where known)
    l3_range: tuple[int, int] | None  # the truth the benchmark scores against
    note: str = ""
    probabilities: dict[str, np.ndarray] = field(default_factory=dict)  # model stem -> per-slice L3 probability


def majority_level_ranges(labels: np.ndarray) -> dict[str, tuple[int, int]]:
    """Inclusive ``k`` range per lumbar level where it is the majority vertebra label of the slice."""
    slices = labels.reshape(labels.shape[0], -1)
    majority = np.array([np.argmax(np.bincount(s[s > 0].astype(np.int64))) if (s > 0).any() else 0 for s in slices])
    out = {}
    for name, label in LEVEL_IDS.items():
        ks = np.flatnonzero(majority == label)
        if ks.size:
            out[name] = (int(ks[0]), int(ks[-1]))
    return out


def real_scans() -> list[Scan]:
    """Every CT in ../shared/data/real (through the accuracy benchmark's list, with its truth)."""
    entries = {entry.name: entry for entry in real_cases()}
    scans = []
    for name, case in entries.items():
        labels_path = SHARED_DATA / name.replace(".nii.gz", "_vertebrae.nii.gz")
        labels = load_ct(labels_path).voxels if labels_path.is_file() else None
        if Path(name).name.startswith(ACRIN):
            levels, note = {n: LEVELS[n] for n in LEVEL_IDS}, "levels (bodies) counted by hand (acrin_level_count.md)"
        elif labels is not None:
            levels, note = majority_level_ranges(labels), "levels from the label map"
        else:
            levels, note = {}, "no L3 in the scan"
        scans.append(Scan(Path(name).name.split(".")[0], "real", case.volume, labels, levels, case.truth_range, note))
    return scans


def phantom_scans(size: int) -> list[Scan]:
    scans = []
    for offset, extent, thickness in PHANTOMS:
        seed = HELD_OUT_SEED + offset
        phantom = generate_phantom(seed, shape_ij=(size, size), slice_thickness_mm=thickness, extent=extent)
        p = phantom.params
        note = f"noise {p['noise_hu']:.0f} HU, {p['pixel_spacing_mm']:.2f} mm pixels, table {p['table']}, contrast {p['contrast']}"
        levels = {name: phantom.body_ranges[name] for name in LEVEL_IDS if name in phantom.body_ranges}
        scans.append(Scan(f"phantom-{seed}-{extent}-{thickness:g}mm", "phantom", phantom.volume, phantom.vertebra_labels, levels, phantom.l3_range, note))
    return scans


# --- measurements -------------------------------------------------------------------------------

def lumbar_slices(scan: Scan) -> np.ndarray:
    """Slice indices of the lumbar spine (L1 to L5 where present), else every slice."""
    if not scan.levels:
        return np.arange(scan.volume.num_slices)
    first = min(low for low, _ in scan.levels.values())
    last = max(high for _, high in scan.levels.values())
    return np.arange(first, last + 1)


def pixel_mm(volume: CTVolume) -> float:
    return float(volume.spacing[0])


def body_mask(hu: np.ndarray) -> np.ndarray:
    """The patient in one axial slice: > -400 HU, largest connected part, holes filled."""
    parts, count = ndimage.label(ndimage.gaussian_filter(hu, 1.0) > -400)
    if count == 0:
        return np.zeros(hu.shape, dtype=bool)
    largest = 1 + int(np.argmax(ndimage.sum_labels(np.ones_like(hu), parts, index=np.arange(1, count + 1))))
    return ndimage.binary_fill_holes(parts == largest)


def acrin_vertebra_mask(hu: np.ndarray) -> np.ndarray:
    """Threshold vertebra of one ACRIN slice (voxel ``[j, i]`` layout): the bone part that holds
    the vertebral-body centre read in ``acrin_level_count.py``."""
    smooth = ndimage.gaussian_filter(hu, 1.0)
    parts, _ = ndimage.label(ndimage.binary_fill_holes(smooth > 120) & (smooth > 60))  # the filled canal left out
    centre = parts[(BODY_J[0] + BODY_J[1]) // 2, SPINE_I]
    return parts == centre if centre else np.zeros(hu.shape, dtype=bool)


def bone_core_values(scan: Scan) -> np.ndarray:
    """HU of the lumbar vertebra voxels at least BONE_CORE_MM inside the axial outline."""
    hu, px = scan.volume.voxels, pixel_mm(scan.volume)
    if scan.labels is not None:
        ks = np.flatnonzero(np.isin(scan.labels, LUMBAR_IDS).any(axis=(1, 2)))
        masks = (np.isin(scan.labels[k], LUMBAR_IDS) for k in ks)
    elif scan.name == ACRIN:
        ks = np.array([k for name in ("L1", "L2", "L3", "L4", "L5") for k in range(LEVELS[name][0], LEVELS[name][1] + 1)])
        masks = (acrin_vertebra_mask(hu[k].astype(np.float32)) for k in ks)
    else:
        return np.empty(0)
    values = [hu[k][ndimage.distance_transform_edt(mask, sampling=px) >= BONE_CORE_MM] for k, mask in zip(ks, masks)]
    return np.concatenate(values).astype(np.float32) if values else np.empty(0)


def local_std(image: np.ndarray, window: int) -> np.ndarray:
    mean = ndimage.uniform_filter(image, window)
    return np.sqrt(np.maximum(ndimage.uniform_filter(image * image, window) - mean * mean, 0.0))


def odd_window(mm: float, px: float) -> int:
    """An odd window width in pixels (at least 3) of about ``mm`` millimetres."""
    return max(3, int(round(mm / px)) // 2 * 2 + 1)


def homogeneous(image: np.ndarray, body: np.ndarray, px: float, hu_range: tuple[float, float], windows: tuple[int, int] | None = None) -> np.ndarray:
    """Pixels of one slice inside the body (eroded 5 mm) whose large-window mean lies in ``hu_range``
    and whose small-window mean is within HOMOGENEOUS_HU of it (away from organ edges).
    ``windows``: (small, large) in pixels; default about 5 mm and 9 mm."""
    small_window, large_window = windows or (odd_window(5.0, px), odd_window(9.0, px))
    inside = ndimage.binary_erosion(body, iterations=max(1, int(round(5.0 / px))))
    large, small = ndimage.uniform_filter(image, large_window), ndimage.uniform_filter(image, small_window)
    return inside & (large >= hu_range[0]) & (large <= hu_range[1]) & (np.abs(small - large) < HOMOGENEOUS_HU)


def neighbour_sums(image: np.ndarray, keep: np.ndarray, px: float) -> np.ndarray:
    """``[sum(a*b), sum(a*a), sum(b*b)]`` over horizontally adjacent homogeneous pixel pairs of the
    residual (image minus its ~5 mm mean): their ratio is the noise's neighbour correlation."""
    residual = image - ndimage.uniform_filter(image, odd_window(5.0, px))
    pair = keep[:, :-1] & keep[:, 1:]
    a, b = residual[:, :-1][pair].astype(np.float64), residual[:, 1:][pair].astype(np.float64)
    return np.array([np.dot(a, b), np.dot(a, a), np.dot(b, b)])


def network_scale(image: np.ndarray, body: np.ndarray, px: float) -> tuple[np.ndarray, np.ndarray, float]:
    """The slice and its body mask resized as the preprocessing does (padded square, bilinear with
    antialiasing) to NETWORK_PIXELS, in HU (no clipping or stretch), and the new pixel size (mm)."""
    rows, cols = image.shape
    side = max(rows, cols)
    top, left = (side - rows) // 2, (side - cols) // 2
    both = np.zeros((2, side, side), dtype=np.float32)
    both[0] = image.min()
    both[0, top : top + rows, left : left + cols] = image
    both[1, top : top + rows, left : left + cols] = body
    small = F.interpolate(torch.from_numpy(both)[:, None], size=(NETWORK_PIXELS, NETWORK_PIXELS), mode="bilinear",
                          align_corners=False, antialias=side > NETWORK_PIXELS)[:, 0].numpy()
    return small[0], small[1] > 0.99, side * px / NETWORK_PIXELS


def measure(scan: Scan) -> dict:
    """HU statistics of one scan (see the module docstring); histograms' raw values under ``_``-keys."""
    px = pixel_mm(scan.volume)
    ks = lumbar_slices(scan)
    body_values, soft_sd, fat_sd, network_sd, widths, whites, bright, sums = [], [], [], [], [], [], [], np.zeros(3)
    for k in ks:
        hu = scan.volume.voxels[k].astype(np.float32)
        body = body_mask(hu)
        body_values.append(hu[body])
        soft = homogeneous(hu, body, px, SOFT_NOISE_HU)
        soft_sd.append(local_std(hu, odd_window(5.0, px))[soft])
        fat_sd.append(local_std(hu, odd_window(5.0, px))[homogeneous(hu, body, px, FAT_NOISE_HU)])
        sums += neighbour_sums(hu, soft, px)
        small, small_body, small_px = network_scale(hu, body, px)
        network_sd.append(local_std(small, 3)[homogeneous(small, small_body, small_px, SOFT_NOISE_HU, (3, 5))])
        clipped = np.clip(small, *PREPROCESSING_HU)
        whites.append(np.percentile(clipped, 99.0))
        bright.append(np.mean(clipped > 200.0))
        columns = np.flatnonzero(body.any(axis=0))
        widths.append((columns[-1] - columns[0] + 1) * px if columns.size else 0.0)
    body_hu = np.concatenate(body_values)
    bone = bone_core_values(scan)
    fat, soft = body_hu[(body_hu >= FAT_HU[0]) & (body_hu <= FAT_HU[1])], body_hu[(body_hu >= SOFT_HU[0]) & (body_hu <= SOFT_HU[1])]
    soft_noise, fat_noise, network_noise = (float(np.median(np.concatenate(v))) if sum(map(len, v)) else float("nan") for v in (soft_sd, fat_sd, network_sd))
    rows, cols = scan.volume.voxels.shape[1:]
    fov = max(rows, cols) * px
    width = float(np.median(widths))
    return {
        "scan": scan.name, "kind": scan.kind, "slices": f"{ks[0]}-{ks[-1]}" + ("" if scan.levels else " (all)"),
        "pixel_mm": round(px, 2), "thickness_mm": round(scan.volume.slice_thickness, 2),
        "fov_mm": round(fov), "body_width_mm": round(width), "body_share_of_fov": round(width / fov, 2),
        "fat_median_hu": round(float(np.median(fat))) if fat.size else "",
        "soft_median_hu": round(float(np.median(soft))) if soft.size else "",
        "fat_share_of_body": round(fat.size / body_hu.size, 2),
        "bone_core_median_hu": round(float(np.median(bone))) if bone.size else "—",
        "bone_core_p10_p90_hu": f"{np.percentile(bone, 10):.0f}-{np.percentile(bone, 90):.0f}" if bone.size else "—",
        "noise_soft_hu": round(soft_noise, 1), "noise_fat_hu": round(fat_noise, 1),
        f"noise_soft_at_{NETWORK_PIXELS}px_hu": round(network_noise, 1),
        f"white_hu_at_{NETWORK_PIXELS}px": round(float(np.median(whites))),
        "image_share_over_200hu": round(float(np.median(bright)), 3),
        "noise_neighbour_corr": round(float(sums[0] / np.sqrt(sums[1] * sums[2])), 2) if sums[1] > 0 else "",
        "_body": body_hu, "_bone": bone,
    }


# --- the network's view and its scores ---------------------------------------------------------

def middle(levels: dict[str, tuple[int, int]], name: str) -> int:
    low, high = levels[name]
    return (low + high) // 2


def score(scan: Scan, model: L3Model, stem: str) -> dict:
    """Exhaustive float32 scoring (``l3locator find --exhaustive``) and the profile's numbers."""
    found = find_l3(scan.volume, model, exhaustive=True)
    p = np.asarray(found.slice_probabilities)
    scan.probabilities[stem] = p
    outside = np.ones(len(p), dtype=bool)
    if scan.l3_range is not None:
        outside[scan.l3_range[0] : scan.l3_range[1] + 1] = False
    truth = (scan.l3_range[0] + scan.l3_range[1]) / 2 if scan.l3_range else None
    row = {
        "scan": scan.name, "model": stem, "slices": len(p), "thickness_mm": round(scan.volume.slice_thickness, 2),
        "l3_truth": f"{scan.l3_range[0]}-{scan.l3_range[1]}" if scan.l3_range else "none",
        "answer": found.l3_slice_index if found.l3_found else "none",
        "error_slices": round(abs(found.l3_slice_index - truth), 1) if found.l3_found and truth is not None else "",
        "confidence": round(found.confidence, 2), "flags": ";".join(found.flags) or "-",
        "non_l3_ge_0.5": f"{int((p[outside] >= 0.5).sum())}/{int(outside.sum())} ({np.mean(p[outside] >= 0.5):.0%})" if outside.any() else "",
    }
    for name in ("L2", "L3", "L4"):
        low_high = scan.levels.get(name)
        row[f"mean_p_{name}"] = round(float(p[low_high[0] : low_high[1] + 1].mean()), 2) if low_high else ""
    row["_answer"] = found.l3_slice_index if found.l3_found else None
    return row


def save_figure(figure: plt.Figure, path: Path) -> None:
    write_atomically(path, lambda temporary: figure.savefig(temporary, format="png", dpi=80))
    plt.close(figure)


def shown_mm(scan: Scan) -> tuple[np.ndarray, float]:
    """The axial stack (anterior up, patient right on the left) and its pixel size in mm."""
    return scan.volume.axial_stack(), pixel_mm(scan.volume)


def write_network_view(scans: list[Scan], model: L3Model, stem: str, path: Path) -> None:
    """Rows: L2, L3, L4 middle slices of each scan; columns: input channels, then two HU windows."""
    config = model.preprocessing
    channels = 1 if config.channel_mode == "repeat" else 3
    names = ["channels 0-2 (same)"] if channels == 1 else ["channel 0 (inferior)", "channel 1 (slice)", "channel 2 (superior)"]
    half_mm = max(max(s.volume.voxels.shape[1:]) * pixel_mm(s.volume) for s in scans) / 2
    rows = [(level, scan) for level in ("L2", "L3", "L4") for scan in scans]
    figure, axes = plt.subplots(len(rows), channels + len(WINDOWS), figsize=(2.3 * (channels + len(WINDOWS)), 2.5 * len(rows)))
    prepared = {id(scan): preprocess_volume(scan.volume, config) for scan in scans}
    for row, (level, scan) in enumerate(rows):
        k = middle(scan.levels, level)
        inputs = assemble_inputs(prepared[id(scan)], [k], config, scan.volume.slice_thickness, scan.volume.superior_step)[0]
        for c in range(channels):
            axes[row, c].imshow(inputs[c].numpy(), cmap="gray", vmin=0.0, vmax=1.0)
            axes[row, c].set_title(names[c] if row == 0 else "", fontsize=8)
        stack, px = shown_mm(scan)
        height, width = stack.shape[1] * px, stack.shape[2] * px
        for c, (window, (low, high)) in enumerate(WINDOWS.items(), start=channels):
            axes[row, c].set_facecolor("black")
            axes[row, c].imshow(stack[k], cmap="gray", vmin=low, vmax=high, extent=(-width / 2, width / 2, height / 2, -height / 2))
            axes[row, c].set_xlim(-half_mm, half_mm)
            axes[row, c].set_ylim(half_mm, -half_mm)
            axes[row, c].set_title(f"{window} (same mm scale)" if row == 0 else "", fontsize=8)
        probability = scan.probabilities[stem][k]
        axes[row, 0].set_ylabel(f"{textwrap.fill(scan.name, 26)}\n{level} mid, slice {k}\np(L3) = {probability:.2f}", fontsize=7)
        for axis in axes[row]:
            axis.set_xticks([])
            axis.set_yticks([])
    figure.suptitle(f"What {stem} sees ({config.input_size} px, {config.channel_mode}"
                    f"{'' if channels == 1 else f' ±{config.neighbor_offset_mm:g} mm'}) and the raw HU; real (ACRIN) vs phantoms", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def write_profiles(scans: list[Scan], rows: list[dict], stem: str, path: Path) -> None:
    figure, axes = plt.subplots(len(scans), 1, figsize=(9, 1.9 * len(scans)))
    for axis, scan in zip(np.atleast_1d(axes), scans):
        p = scan.probabilities[stem]
        row = next(r for r in rows if r["scan"] == scan.name and r["model"] == stem)
        for name, colour in (("L2", "tab:blue"), ("L4", "tab:orange")):
            if name in scan.levels:
                low, high = scan.levels[name]
                axis.axvspan(low - 0.5, high + 0.5, color=colour, alpha=0.12, label=name)
        if scan.l3_range:
            axis.axvspan(scan.l3_range[0] - 0.5, scan.l3_range[1] + 0.5, color="tab:green", alpha=0.3, label="L3 (truth)")
        axis.plot(np.arange(len(p)), p, color="black", lw=1)
        axis.axhline(0.5, color="grey", ls=":", lw=0.8)
        if row["_answer"] is not None:
            axis.axvline(row["_answer"], color="red", lw=1.2, label="answer")
        axis.set_ylim(-0.03, 1.03)
        axis.set_xlim(-0.5, len(p) - 0.5)
        axis.set_title(f"{scan.name} ({scan.kind}, {scan.volume.slice_thickness:.2f} mm): answer {row['answer']}, confidence {row['confidence']}, "
                       f"flags {row['flags']}; non-L3 >= 0.5: {row['non_l3_ge_0.5'] or '-'}", fontsize=7)
        axis.tick_params(labelsize=7)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=6, loc="upper left")
    np.atleast_1d(axes)[-1].set_xlabel("slice index (0 = lowest)", fontsize=8)
    figure.suptitle(f"L3 probability per slice, {stem} (exhaustive float32)", fontsize=9)
    figure.tight_layout()
    save_figure(figure, path)


def write_histograms(stats: list[dict], path: Path) -> None:
    figure, (body_axis, bone_axis) = plt.subplots(1, 2, figsize=(13, 4.5))
    body_bins, bone_bins = np.arange(-250, 251, 5), np.arange(-100, 1201, 10)
    colours = iter(plt.cm.tab10.colors)
    for s in stats:
        real = s["kind"] == "real"
        style = {"color": next(colours) if real else "grey", "ls": "-" if real else "--", "lw": 1.4 if real else 0.9, "label": s["scan"][:30]}
        for axis, values, bins in ((body_axis, s["_body"], body_bins), (bone_axis, s["_bone"], bone_bins)):
            if values.size:
                density, edges = np.histogram(values, bins=bins, density=True)
                axis.plot((edges[:-1] + edges[1:]) / 2, density, **style)
    body_axis.set_title("body voxels, lumbar slices (fat peak left, soft tissue right)", fontsize=9)
    bone_axis.set_title(f"vertebral bone core (>= {BONE_CORE_MM:g} mm inside L1-L5), real solid, phantoms dashed", fontsize=9)
    for axis in (body_axis, bone_axis):
        axis.set_xlabel("HU", fontsize=8)
        axis.set_ylabel("density", fontsize=8)
        axis.tick_params(labelsize=7)
    body_axis.legend(fontsize=6)
    figure.tight_layout()
    save_figure(figure, path)


# --- the report ---------------------------------------------------------------------------------

def table(rows: list[dict]) -> list[str]:
    columns = [c for c in rows[0] if not c.startswith("_")]
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows]]


def kept_reading(path: Path) -> str:
    """The hand-written section of an existing report (from READING_HEADING on), else a placeholder."""
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        if READING_HEADING in text:
            return text[text.index(READING_HEADING) :].rstrip() + "\n"
    return f"{READING_HEADING}\n\n{READING_PLACEHOLDER}\n"


def write_report(stats: list[dict], rows: list[dict], scans: list[Scan], stems: list[str], command: str, path: Path) -> None:
    lines = [
        "# Realism check: real CT vs the training phantoms", "",
        f"Command: `{command}`  ",
        "Method (regions, noise estimate, bone core): the docstring of `bench/realism.py`. Pictures in `results/realism/`: "
        + ", ".join(f"`network_view_{s}.png`, `profiles_{s}.png`" for s in stems) + ", `hu_histograms.png`.", "",
        "## Scans", "",
        *[f"* `{scan.name}` ({scan.kind}): {scan.note}; levels {', '.join(f'{n} {a}-{b}' for n, (a, b) in sorted(scan.levels.items())) or 'none'}" for scan in scans], "",
        "## HU statistics (lumbar slices; chest scans: all slices)", "",
        *table(stats), "",
        "## The network's L3 probability per slice", "",
        "`non_l3_ge_0.5`: slices outside the labelled L3 that the network alone scores >= 0.5 (before the locate rule); "
        "`mean_p_L2/L3/L4`: mean probability over each level's slices (bodies for ACRIN and the phantoms, majority label for the label maps).", "",
        *table(rows), "",
        kept_reading(path),
    ]
    write_atomically(path, lambda temporary: Path(temporary).write_text("\n".join(lines), encoding="utf-8"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="model file (repeatable; labelled by its file stem)")
    parser.add_argument("--phantom-size", type=int, default=256, help="phantom in-plane size (pixels)")
    parser.add_argument("--output", default=str(OUTPUT), help="folder for the pictures; the report goes beside it as <folder>.md")
    args = parser.parse_args(argv)
    output = Path(args.output)
    real = real_scans()
    if not any(scan.name == ACRIN for scan in real):
        print("the real scans in ../shared/data/real are needed (ACRIN abdomen missing)", file=sys.stderr)
        return 1
    phantoms = phantom_scans(args.phantom_size)
    stats = []
    for scan in real + phantoms:
        stats.append(measure(scan))
        print(" ".join(f"{k}={v}" for k, v in stats[-1].items() if not k.startswith("_")), flush=True)
    write_histograms(stats, output / "hu_histograms.png")
    acrin = next(scan for scan in real if scan.name == ACRIN)
    scored = real + phantoms[:VIEW_PHANTOMS]
    rows, stems = [], []
    for model_path in args.model:
        model, stem = load_model(model_path), Path(model_path).stem
        stems.append(stem)
        for scan in scored:
            rows.append(score(scan, model, stem))
            print(" ".join(f"{k}={v}" for k, v in rows[-1].items() if not k.startswith("_")), flush=True)
        write_profiles(scored, rows, stem, output / f"profiles_{stem}.png")
        write_network_view([acrin, *phantoms[:VIEW_PHANTOMS]], model, stem, output / f"network_view_{stem}.png")
    write_report(stats, rows, real + phantoms, stems, "python bench/realism.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                 output.with_suffix(".md"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
