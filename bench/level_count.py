"""Vertebra-counting benchmark (issue 16): the classical second opinion of :mod:`l3locator.level_count`
on held-out phantoms (with rib and sacral variants) and every real scan in ../shared/data/real.

    python bench/level_count.py [--phantoms 24] [--phantom-size 256] [--vertebra-template MASK]
                                [--first-seed 1000000] [--output bench/results/level_count.md]

The counter's settings were chosen on the default seeds; ``--first-seed 3000000`` (written to
``bench/results/level_count_validation.md``) checks them on phantoms they were not chosen on.

Per case: the counter's L3 range (or "abstain"), the anchors it found, the range each count gives
on its own, the truth where known, and the verdict:

* ``right``: it gave a range that contains the middle of the true L3 range;
* ``wrong``: it gave a range that does not (or gave one where the scan has no L3);
* ``abstain``: it gave none. Abstaining is the expected answer where the scan shows no L3, no
  sacrum or no lowest ribs, and on transitional anatomy (``lumbarised``/``sacralised``: there
  the count from the sacrum and the count from the ribs name different vertebrae).

The counted real abdomen is counted again after linear interpolation to thinner slices.

**One count only.** Most abdominal CTs end above the sacrum or below the ribs; there the counter
abstains but keeps the one count it could make (``one_count_range``), which is enough to doubt a
network answer on another level. Its own verdict (`one count`: right / wrong / none) is measured on
scans cut the way they come: every abdomen and whole-body phantom and the counted real abdomen are
also counted (a) from the middle of L4 up (the lowest ribs in view, no sacrum: how the held-out
abdomens of issue 16 were framed) and (b) from the middle of L2 down (the sacrum, no ribs).
The phantoms are drawn twice: with the analytic vertebrae the counter was built on, and with T9-L5
painted from a real vertebra mask (``--vertebra-template``, as ``bench/accuracy.py`` and the shipped
model's training data): kinds ``phantom`` and ``phantom, templated``.
Also the counter's time per scan, and on a 512 x 512 x 495 volume (the ACRIN scan with each
slice repeated five times, 0.85 mm apart) against the 0.3 s budget.

**Discs.** Every count stands on the discs the counter finds, so they are checked on their own
against the true discs: the middles between consecutive vertebral bodies (the sacrum left out) of
the phantoms' body ranges, of the hand-counted real abdomen, and of the real scans' vertebra label
maps (each slice's label taken from the front third of the labelled rows, where the bodies lie:
the arches of the vertebra above reach down beside the body below). A found disc within a quarter
of the true discs' median spacing of a true disc is a hit; one farther from every true disc,
within the true discs' span, is a false disc.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from l3locator.level_count import LevelCount, count_levels
from l3locator.phantoms import generate_phantom
from l3locator.phantoms.vertebra_templates import VertebraTemplates
from l3locator.reading import load_ct
from l3locator.volume import CTVolume
from accuracy import (COUNTED_L3, COUNTED_LEVELS, HELD_OUT_SEED, SHARED_DATA, add_vertebra_template_option, real_cases,
                      vertebra_templates)  # the real scans and their truth, as the accuracy benchmark reads them
from speed import resample_slices  # the speed benchmark's thin-slice volumes, the same way

#: The counted real abdomen is also counted after linear interpolation to these slice counts
#: (4.25 mm → about 2.8, 1.4 and 0.8 mm): thin slices are where classical counting goes wrong.
THIN_SLICE_COUNTS = (150, 300, 500)

#: Held-out phantom mix: (extent, slice thickness mm, variant or None = drawn), cycled over the seeds.
PHANTOM_MIX = (("abdomen", 5.0, None), ("abdomen", 2.5, None), ("whole_body", 3.0, None), ("abdomen", 1.25, None),
               ("chest", 3.0, None), ("l3_edge", 2.5, None), ("abdomen", 2.5, "11_ribs"), ("abdomen", 3.0, "13_ribs"),
               ("abdomen", 2.5, "lumbarised"), ("abdomen", 3.0, "sacralised"), ("abdomen", 1.0, None), ("whole_body", 5.0, None))


#: A found disc within this fraction of the true discs' median spacing of a true disc is a hit.
DISC_HIT_FRACTION = 0.25
#: True discs closer than this (mm) to either end of the scan are not scored: the counter does not
#: look for discs at the scan's edges.
DISC_EDGE_MM = 15.0


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


def one_count_verdict(count: LevelCount, truth: tuple[int, int] | None) -> str:
    """``right`` / ``wrong`` for the one count of a scan that allows only one, ``none`` otherwise."""
    if count.one_count_range is None:
        return "none"
    return verdict(LevelCount(count.one_count_range), truth)


def cut(volume: CTVolume, first: int, last: int) -> CTVolume:
    """Stored slices ``first``..``last`` (inclusive) of ``volume``, geometry kept."""
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, 3] = volume.ras_of_ijk([0, 0, first])
    return CTVolume(volume.voxels[first : last + 1].copy(), matrix, source=f"{volume.source} [{first}:{last}]")


def cuts(volume: CTVolume, l2: tuple[int, int], l3: tuple[int, int], l4: tuple[int, int]) -> list[tuple[str, CTVolume, tuple[int, int]]]:
    """The two framings of **One count only** (module docstring), with L3's range in each cut:
    from the middle of L4 towards the head (ribs, no sacrum) and from the middle of L2 towards
    the feet (sacrum, no ribs). Stored-slice ranges; either storage order."""
    up = l2[0] > l3[0]  # slice index grows towards the head
    mid4, mid2, n = (l4[0] + l4[1]) // 2, (l2[0] + l2[1]) // 2, volume.num_slices
    ribs_side = (mid4, n - 1) if up else (0, mid4)
    sacrum_side = (0, mid2) if up else (mid2, n - 1)
    return [(f"from mid L4 {'up' if up else 'towards the head'} (ribs, no sacrum)", cut(volume, *ribs_side), (l3[0] - ribs_side[0], l3[1] - ribs_side[0])),
            (f"from mid L2 towards the feet (sacrum, no ribs)", cut(volume, *sacrum_side), (l3[0] - sacrum_side[0], l3[1] - sacrum_side[0]))]


def row(name: str, kind: str, volume: CTVolume, truth: tuple[int, int] | None, expected: str, one_expected: str = "none") -> dict:
    """One case, counted once and timed."""
    count, seconds = timed(volume)
    return record(name, kind, volume, count, seconds, truth, expected, one_expected)


def record(name: str, kind: str, volume: CTVolume, count: LevelCount, seconds: float, truth: tuple[int, int] | None,
           expected: str, one_expected: str) -> dict:
    """The table row of a case whose ``count`` took ``seconds``."""
    return {"case": name, "kind": kind, "slices": volume.num_slices, "thickness_mm": round(volume.slice_thickness, 3), "truth": fmt(truth),
            "count": fmt(count.l3_range), "anchors": "+".join(count.anchors) or "none", "from_sacrum": fmt(count.from_sacrum),
            "from_ribs": fmt(count.from_ribs), "verdict": verdict(count, truth), "expected": expected,
            "one_count": fmt(count.one_count_range), "one_verdict": one_count_verdict(count, truth), "one_expected": one_expected,
            "seconds": round(seconds, 3), "reason": count.reason}


def phantom_rows(count: int, shape_ij: int, templates: VertebraTemplates | None = None, kind: str = "phantom",
                 first_seed: int = HELD_OUT_SEED, discs: list[dict] | None = None) -> list[dict]:
    """Held-out phantoms from ``first_seed`` on (variants forced by :data:`PHANTOM_MIX`), vertebrae
    from ``templates`` (None: analytic), and their one-anchor cuts (kind ``"<kind>, one anchor"``).
    Each whole phantom's discs are checked into ``discs`` (:func:`disc_row`)."""
    rows = []
    for n in range(count):
        extent, thickness, variant = PHANTOM_MIX[n % len(PHANTOM_MIX)]
        seed = first_seed + n
        phantom = generate_phantom(seed, shape_ij=(shape_ij, shape_ij), slice_thickness_mm=thickness, extent=extent, variant=variant,
                                   vertebra_templates=templates)
        drawn = phantom.params["variant"]
        transitional = drawn in ("lumbarised", "sacralised")
        expected = "abstain" if phantom.l3_range is None or extent in ("chest", "l3_edge") or transitional else "right"
        name = f"phantom-{seed}-{extent}-{thickness}mm-{drawn}"
        counted, seconds = timed(phantom.volume)
        rows.append(record(name, kind, phantom.volume, counted, seconds, phantom.l3_range, expected, "none"))
        print(rows[-1], flush=True)
        if discs is not None:
            discs.append(disc_row(name, kind, phantom.volume, counted, phantom.body_ranges))
        if extent in ("abdomen", "whole_body") and {"L2", "L4"} <= set(phantom.body_ranges):
            for framing, part, truth in cuts(phantom.volume, phantom.body_ranges["L2"], phantom.l3_range, phantom.body_ranges["L4"]):
                rows.append(row(f"{name} {framing}", f"{kind}, one anchor", part, truth, "abstain", "any" if transitional else "right"))
                print(rows[-1], flush=True)
    return rows


def true_discs(body_ranges: dict[str, tuple[int, int]]) -> np.ndarray:
    """Stored-slice positions of the discs between consecutive vertebral bodies (inclusive body
    ranges in stored slices; the sacrum left out: the counter may stand S1's top in for L5/S1)."""
    ranges = sorted((r for name, r in body_ranges.items() if name != "sacrum"), key=lambda r: r[0])
    return np.array([0.5 * (lower[1] + upper[0]) for lower, upper in zip(ranges, ranges[1:])])


def label_map_body_ranges(labels: CTVolume) -> dict[str, tuple[int, int]]:
    """Per vertebra label, the inclusive stored-slice range where it is the majority label in the front
    third of the labelled rows (the bodies; the arches of the vertebra above reach down behind the
    body below)."""
    stack = labels.axial_stack()  # rows anterior to posterior
    slices: dict[str, list[int]] = {}
    for k, section in enumerate(stack):
        rows = np.flatnonzero((section > 0).any(axis=1))
        if rows.size == 0:
            continue
        front = section[rows[0] : rows[0] + max(1, rows.size // 3)]
        ids = front[front > 0].astype(np.int64)
        slices.setdefault(str(int(np.argmax(np.bincount(ids)))), []).append(k)
    return {label: (min(ks), max(ks)) for label, ks in slices.items()}


def disc_row(name: str, kind: str, volume: CTVolume, count: LevelCount, body_ranges: dict[str, tuple[int, int]]) -> dict:
    """The counter's discs (``count.disc_slices``) against the true discs of ``body_ranges``."""
    dz, n = volume.slice_thickness, volume.num_slices
    truth = true_discs(body_ranges)
    spacing_mm = float(np.median(np.diff(truth))) * dz if truth.size > 1 else 0.0
    scored = truth[(truth * dz >= DISC_EDGE_MM) & ((n - 1 - truth) * dz >= DISC_EDGE_MM)]
    found = np.asarray(count.disc_slices, dtype=float)
    reach = DISC_HIT_FRACTION * spacing_mm / dz  # slices
    hits = [float(np.min(np.abs(found - t))) for t in scored if found.size and np.min(np.abs(found - t)) <= reach]
    span = (scored.min() - 2 * reach, scored.max() + 2 * reach) if scored.size else (0.0, -1.0)
    inside = found[(found >= span[0]) & (found <= span[1])]
    false = [f for f in inside if truth.size == 0 or np.min(np.abs(truth - f)) > reach]
    return {"case": name, "kind": kind, "thickness_mm": round(dz, 3), "true_discs": len(scored), "hits": len(hits),
            "false": len(false), "spacing_mm": round(spacing_mm, 1), "offset_mm": round(float(np.median(hits)) * dz, 1) if hits else "",
            "found": " ".join(str(int(k)) for k in count.disc_slices) or "–",
            "truth": " ".join(f"{t:g}" for t in scored) or "–", "reason": "" if count.disc_slices else count.reason}


def thinned(volume: CTVolume, truth: tuple[int, int], num_slices: int) -> tuple[CTVolume, tuple[int, int]]:
    """``volume`` linearly interpolated to ``num_slices`` slices over the same length, and the
    stored-slice range ``truth`` carried over."""
    scale = (num_slices - 1) / (volume.num_slices - 1)
    return resample_slices(volume, num_slices), (int(round(truth[0] * scale)), int(round(truth[1] * scale)))


def real_body_ranges(name: str) -> dict[str, tuple[int, int]] | None:
    """The vertebral bodies' stored-slice ranges of the real scan ``name``: the hand count, or its
    vertebra label map (:func:`label_map_body_ranges`); None when it has neither."""
    if name in COUNTED_LEVELS:
        return COUNTED_LEVELS[name]
    entry = next((e for e in json.loads((SHARED_DATA / "manifest.json").read_text()) if e.get("file") == name), {})
    return label_map_body_ranges(load_ct(SHARED_DATA / entry["labels"])) if entry.get("labels") else None


def real_rows(discs: list[dict] | None = None) -> list[dict]:
    """Every real scan of ``accuracy.real_cases`` (the same truth: label maps, or the hand count),
    and the hand-counted abdomen again at thinner slices. The discs of each scan with known bodies
    are checked into ``discs``."""
    rows = []
    for case in real_cases():
        expected = "right" if case.name in COUNTED_L3 else "abstain"  # the others lack the sacrum (or L3 entirely)
        counted, seconds = timed(case.volume)
        rows.append(record(case.name, "real", case.volume, counted, seconds, case.truth_range, expected, "none"))
        print(rows[-1], flush=True)
        bodies = real_body_ranges(case.name)
        if discs is not None and bodies:
            discs.append(disc_row(case.name, "real", case.volume, counted, bodies))
        if case.name in COUNTED_L3:
            levels = COUNTED_LEVELS[case.name]
            for framing, part, truth in cuts(case.volume, levels["L2"], levels["L3"], levels["L4"]):
                rows.append(row(f"{case.name} {framing}", "real, one anchor", part, truth, "abstain", "right"))
                print(rows[-1], flush=True)
                thin, thin_truth = thinned(part, truth, int(round((part.num_slices - 1) * part.slice_thickness / 1.6)) + 1)
                rows.append(row(f"{case.name} {framing}, interpolated to {thin.slice_thickness:.2f} mm", "real, one anchor", thin, thin_truth, "abstain", "right"))
                print(rows[-1], flush=True)
            for num_slices in THIN_SLICE_COUNTS:
                thin, thin_truth = thinned(case.volume, case.truth_range, num_slices)
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
    count, _ = timed(big)  # warm-up
    seconds = min(timed(big)[1] for _ in range(3))
    return record("acrin, slices repeated x5 (512x512x495)", "budget", big, count, seconds, (47 * 5, 54 * 5 + 4), "right", "none")


def disc_lines(discs: list[dict]) -> list[str]:
    """The disc check's section: a tally per kind, then one row per scan."""
    lines = ["## Discs found against the true discs", "",
             f"Stored slices. `hits`: true discs (away from the scan's ends by {DISC_EDGE_MM:g} mm) with a found disc within",
             f"{DISC_HIT_FRACTION:g} of the true discs' median spacing; `false`: found discs that far from every true disc,",
             "inside the true discs' span; `offset`: the hits' median distance to their true disc.", "",
             "| kind | scans | true discs | hits | false discs |", "|---|---|---|---|---|"]
    for kind in dict.fromkeys(d["kind"] for d in discs):
        subset = [d for d in discs if d["kind"] == kind]
        lines.append(f"| {kind} | {len(subset)} | {sum(d['true_discs'] for d in subset)} | {sum(d['hits'] for d in subset)} | "
                     f"{sum(d['false'] for d in subset)} |")
    lines += ["", "| case | kind | mm | true discs | hits | false | spacing mm | offset mm | found | true | note |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    lines += [f"| {d['case']} | {d['kind']} | {d['thickness_mm']} | {d['true_discs']} | {d['hits']} | {d['false']} | {d['spacing_mm']} | "
              f"{d['offset_mm']} | {d['found']} | {d['truth']} | {d['reason']} |" for d in discs]
    return lines + [""]


def write_markdown(rows: list[dict], path: Path, templated: str, first_seed: int, command: str, discs: list[dict] | None = None) -> None:
    lines = ["# Vertebra counting: the classical second opinion (issue 16)", "",
             f"`{command}` — `l3locator.level_count.count_levels` on held-out phantoms (seeds from",
             f"{first_seed:,}, variants forced for some; `templated`: vertebrae {templated}) and the real scans in `../shared`. Verdict: `right` = the range",
             "contains the middle of the true L3; `wrong` = a range that does not (or any range where there is no L3);",
             "`abstain` = no range. `expected` is what a careful counter should do (abstain where an anchor is",
             "missing or the anatomy is transitional). `one count`: the range of the one count where only one anchor",
             "was found, kept apart to doubt an answer on another level; `one verdict` judges it the same way",
             "(`none`: no such range; `one expected`: `any` on transitional anatomy, where one count is off by design).", ""]
    for kind in ("phantom", "phantom, one anchor", "phantom, templated", "phantom, templated, one anchor", "real", "real, one anchor", "budget"):
        subset = [r for r in rows if r["kind"] == kind]
        if not subset:
            continue
        tally = {v: sum(r["verdict"] == v for r in subset) for v in ("right", "wrong", "abstain")}
        as_expected = sum(r["verdict"] == r["expected"] for r in subset)
        one = {v: sum(r["one_verdict"] == v for r in subset) for v in ("right", "wrong")}
        lines += [f"## {kind} ({len(subset)} cases: {tally['right']} right, {tally['wrong']} wrong, {tally['abstain']} abstained; "
                  f"{as_expected} as expected; one count: {one['right']} right, {one['wrong']} wrong)", "",
                  "| case | slices | mm | true L3 | count L3 | anchors | from sacrum | from ribs | verdict | expected | one count | one verdict | one expected | s | reason |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        lines += [f"| {r['case']} | {r['slices']} | {r['thickness_mm']} | {r['truth']} | {r['count']} | {r['anchors']} | {r['from_sacrum']} | "
                  f"{r['from_ribs']} | {r['verdict']} | {r['expected']} | {r['one_count']} | {r['one_verdict']} | {r['one_expected']} | "
                  f"{r['seconds']} | {r['reason']} |" for r in subset]
        lines.append("")
    if discs:
        lines += disc_lines(discs)
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phantoms", type=int, default=24, help="number of held-out phantoms")
    parser.add_argument("--phantom-size", type=int, default=256, help="phantom in-plane size (pixels)")
    add_vertebra_template_option(parser)
    parser.add_argument("--first-seed", type=int, default=HELD_OUT_SEED,
                        help="seed of the first phantom (default: the benchmark's; another range checks what was tuned on it)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "level_count.md"))
    args = parser.parse_args()
    templates, described = vertebra_templates(args.vertebra_template)
    discs: list[dict] = []
    rows = phantom_rows(args.phantoms, args.phantom_size, first_seed=args.first_seed, discs=discs)
    if templates is not None:
        rows += phantom_rows(args.phantoms, args.phantom_size, templates, "phantom, templated", args.first_seed, discs)
    rows += real_rows(discs)
    budget = budget_row()
    if budget:
        rows.append(budget)
        print(budget)
    command = " ".join(["python bench/level_count.py", *sys.argv[1:]])
    write_markdown(rows, Path(args.output), described, args.first_seed, command, discs)
    wrong = sum(r["verdict"] == "wrong" for r in rows)
    one_wrong = sum(r["one_verdict"] == "wrong" and r["one_expected"] == "right" for r in rows)
    print(f"wrote {args.output}: {len(rows)} cases, {wrong} wrong; one count wrong where it should be right: {one_wrong}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
