"""Vertebra-counting benchmark (issue 16): the classical second opinion of :mod:`l3locator.level_count`
on held-out phantoms (with rib and sacral variants) and every real scan in ../shared/data/real.

    python bench/level_count.py [--phantoms 24] [--phantom-size 256] [--output bench/results/level_count.md]

Per case: the counter's L3 range (or "abstain"), the anchors it found, the range each count gives
on its own, the truth where known, and the verdict:

* ``right``: it gave a range that contains the middle of the true L3 range;
* ``wrong``: it gave a range that does not (or gave one where the scan has no L3);
* ``abstain``: it gave none. Abstaining is the expected answer where the scan shows no L3, no
  sacrum or no lowest ribs, and on transitional anatomy (``lumbarised``/``sacralised``: there
  the count from the sacrum and the count from the ribs name different vertebrae).

The counted real abdomen is counted again after linear interpolation to thinner slices.
Also the counter's time per scan, and on a 512 x 512 x 495 volume (the ACRIN scan with each
slice repeated five times, 0.85 mm apart) against the 0.3 s budget.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from l3locator.level_count import LevelCount, count_levels
from l3locator.phantoms import generate_phantom
from l3locator.reading import load_ct
from l3locator.volume import CTVolume
from accuracy import COUNTED_L3, HELD_OUT_SEED, SHARED_DATA, real_cases  # the real scans and their truth, as the accuracy benchmark reads them
from speed import resample_slices  # the speed benchmark's thin-slice volumes, the same way

#: The counted real abdomen is also counted after linear interpolation to these slice counts
#: (4.25 mm → about 2.8, 1.4 and 0.8 mm): thin slices are where classical counting goes wrong.
THIN_SLICE_COUNTS = (150, 300, 500)

#: Held-out phantom mix: (extent, slice thickness mm, variant or None = drawn), cycled over the seeds.
PHANTOM_MIX = (("abdomen", 5.0, None), ("abdomen", 2.5, None), ("whole_body", 3.0, None), ("abdomen", 1.25, None),
               ("chest", 3.0, None), ("l3_edge", 2.5, None), ("abdomen", 2.5, "11_ribs"), ("abdomen", 3.0, "13_ribs"),
               ("abdomen", 2.5, "lumbarised"), ("abdomen", 3.0, "sacralised"), ("abdomen", 1.0, None), ("whole_body", 5.0, None))


def verdict(count: LevelCount, truth: tuple[int, int] | None) -> str:
    if count.l3_range is None:
        return "abstain"
    if truth is None:
        return "wrong"
    middle = (truth[0] + truth[1]) / 2
    return "right" if count.l3_range[0] <= middle <= count.l3_range[1] else "wrong"


def timed(volume: CTVolume) -> tuple[LevelCount, float]:
    started = time.perf_counter()
    count = count_levels(volume)
    return count, time.perf_counter() - started


def fmt(r: tuple[int, int] | None) -> str:
    return f"{r[0]}–{r[1]}" if r else "–"


def row(name: str, kind: str, volume: CTVolume, truth: tuple[int, int] | None, expected: str) -> dict:
    count, seconds = timed(volume)
    return {"case": name, "kind": kind, "slices": volume.num_slices, "thickness_mm": round(volume.slice_thickness, 3), "truth": fmt(truth),
            "count": fmt(count.l3_range), "anchors": "+".join(count.anchors) or "none", "from_sacrum": fmt(count.from_sacrum),
            "from_ribs": fmt(count.from_ribs), "verdict": verdict(count, truth), "expected": expected, "seconds": round(seconds, 3),
            "reason": count.reason}


def phantom_rows(count: int, shape_ij: int) -> list[dict]:
    rows = []
    for n in range(count):
        extent, thickness, variant = PHANTOM_MIX[n % len(PHANTOM_MIX)]
        seed = HELD_OUT_SEED + n
        phantom = generate_phantom(seed, shape_ij=(shape_ij, shape_ij), slice_thickness_mm=thickness, extent=extent, variant=variant)
        drawn = phantom.params["variant"]
        transitional = drawn in ("lumbarised", "sacralised")
        expected = "abstain" if phantom.l3_range is None or extent in ("chest", "l3_edge") or transitional else "right"
        rows.append(row(f"phantom-{seed}-{extent}-{thickness}mm-{drawn}", "phantom", phantom.volume, phantom.l3_range, expected))
        print(rows[-1], flush=True)
    return rows


def real_rows() -> list[dict]:
    """Every real scan of ``accuracy.real_cases`` (the same truth: label maps, or the hand count),
    and the hand-counted abdomen again at thinner slices."""
    rows = []
    for case in real_cases():
        expected = "right" if case.name in COUNTED_L3 else "abstain"  # the others lack the sacrum (or L3 entirely)
        rows.append(row(case.name, "real", case.volume, case.truth_range, expected))
        print(rows[-1], flush=True)
        if case.name in COUNTED_L3:
            for num_slices in THIN_SLICE_COUNTS:
                thin = resample_slices(case.volume, num_slices)
                scale = (num_slices - 1) / (case.volume.num_slices - 1)
                thin_truth = (int(round(case.truth_range[0] * scale)), int(round(case.truth_range[1] * scale)))
                rows.append(row(f"{case.name} interpolated to {num_slices} slices", "real", thin, thin_truth, expected))
                print(rows[-1], flush=True)
    return rows


def budget_row() -> dict | None:
    """The ACRIN scan with every slice repeated 5 times: 512 x 512 x 495 voxels, 0.85 mm apart."""
    path = SHARED_DATA / "real" / "acrin_flt_breast001_abdomen_ct.nii.gz"
    if not path.is_file():
        return None
    volume = load_ct(path)
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, 2] /= 5.0
    big = CTVolume(np.repeat(volume.voxels, 5, axis=0), matrix, source="acrin x5")
    timed(big)  # warm-up
    seconds = min(timed(big)[1] for _ in range(3))
    count = count_levels(big)
    truth = (47 * 5, 54 * 5 + 4)
    return {"case": "acrin, slices repeated x5 (512x512x495)", "kind": "budget", "slices": big.num_slices, "thickness_mm": round(big.slice_thickness, 3),
            "truth": fmt(truth), "count": fmt(count.l3_range), "anchors": "+".join(count.anchors) or "none", "from_sacrum": fmt(count.from_sacrum),
            "from_ribs": fmt(count.from_ribs), "verdict": verdict(count, truth), "expected": "right", "seconds": round(seconds, 3), "reason": count.reason}


def write_markdown(rows: list[dict], path: Path) -> None:
    lines = ["# Vertebra counting: the classical second opinion (issue 16)", "",
             "`python bench/level_count.py` — `l3locator.level_count.count_levels` on held-out phantoms (seeds from",
             f"{HELD_OUT_SEED:,}, variants forced for some) and the real scans in `../shared`. Verdict: `right` = the range",
             "contains the middle of the true L3; `wrong` = a range that does not (or any range where there is no L3);",
             "`abstain` = no range. `expected` is what a careful counter should do (abstain where an anchor is",
             "missing or the anatomy is transitional).", ""]
    for kind in ("phantom", "real", "budget"):
        subset = [r for r in rows if r["kind"] == kind]
        if not subset:
            continue
        tally = {v: sum(r["verdict"] == v for r in subset) for v in ("right", "wrong", "abstain")}
        as_expected = sum(r["verdict"] == r["expected"] for r in subset)
        lines += [f"## {kind} ({len(subset)} cases: {tally['right']} right, {tally['wrong']} wrong, {tally['abstain']} abstained; "
                  f"{as_expected} as expected)", "",
                  "| case | slices | mm | true L3 | count L3 | anchors | from sacrum | from ribs | verdict | expected | s | reason |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['slices']} | {r['thickness_mm']} | {r['truth']} | {r['count']} | {r['anchors']} | {r['from_sacrum']} | "
                  f"{r['from_ribs']} | {r['verdict']} | {r['expected']} | {r['seconds']} | {r['reason']} |" for r in subset]
        lines.append("")
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantoms", type=int, default=24, help="number of held-out phantoms")
    parser.add_argument("--phantom-size", type=int, default=256, help="phantom in-plane size (pixels)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "level_count.md"))
    args = parser.parse_args()
    rows = phantom_rows(args.phantoms, args.phantom_size) + real_rows()
    budget = budget_row()
    if budget:
        rows.append(budget)
        print(budget)
    write_markdown(rows, Path(args.output))
    wrong = sum(r["verdict"] == "wrong" for r in rows)
    print(f"wrote {args.output}: {len(rows)} cases, {wrong} wrong")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
