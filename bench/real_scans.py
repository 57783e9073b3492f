"""The real scans in ../shared, one row per (model, scan): what an ablation reads first.

    python bench/real_scans.py MODEL [MODEL ...] [--output bench/results/real_scans.md]

Each model answers every real scan as ``l3locator find --exhaustive`` does
(:func:`accuracy.evaluate_case`: locate rule, lung check, vertebra count), so the rows show what a
user would get. Columns: the truth (labelled, counted or none), the answer and its error from the
middle of L3 (slices), the confidence and flags, and ``non-L3 >= 0.5``, the share of slices outside
L3 that the network alone scores >= 0.5 (the profile's cleanliness, before the locate rule), and
the highest smoothed score outside L3 (how near a false run comes to the locate rule's threshold). A
last line per model counts the scans answered within 1 slice of the middle of L3 and the scans
without L3 that come back ``no_l3_found``. A second table gives, per model, the network's mean
score over each counted level of the scans whose levels were counted by hand (ACRIN:
``accuracy.COUNTED_LEVELS``): whether L3 stands out from L2 and L4.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from accuracy import evaluate_case, real_cases, truth_text
from l3locator.modelfile import load_model

COLUMNS = ("model", "scan", "L3 truth", "answer", "error (slices)", "confidence", "flags", "non-L3 >= 0.5", "max smoothed outside L3")


def model_lines(path: str, cases: list) -> tuple[list[str], list[str]]:
    """Table rows of one model on every real scan, then its tally row; and the rows of its
    per-level mean scores on the scans with counted levels."""
    model = load_model(path)
    lines, level_lines, within_1, negatives_found, labelled, negatives = [], [], 0, 0, 0, 0
    for case in cases:
        row = evaluate_case(model, case)
        if row["level_means"]:
            level_lines.append(f"| {Path(path).name} | {case.name} | {row['level_means']} |")
        cells = (Path(path).name, case.name, truth_text(case), row["predicted"], row["error_slices"], row["confidence"], row["flags"],
                 row["non_l3_slices_ge_0.5"], row["max_smoothed_outside_l3"])
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        if case.truth_range is None:
            negatives += 1
            negatives_found += "no_l3_found" in row["flags"]
        else:
            labelled += 1
            within_1 += row["error_slices"] != "" and row["error_slices"] <= 1
    lines.append(f"| {Path(path).name} | **tally** | | within 1 slice: {within_1}/{labelled} | | | "
                 f"no L3 found where none: {negatives_found}/{negatives} | | |")
    return lines, level_lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--output", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    cases = real_cases()
    if not cases:
        print("no real scans (../shared/data is absent)", file=sys.stderr)
        return 1
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    level_lines: list[str] = []
    for path in args.models:
        rows, levels = model_lines(path, cases)
        lines += rows
        level_lines += levels
        print("\n".join(lines[-len(cases) - 1 :]), flush=True)
    if level_lines:
        lines += ["", "Mean score over each counted level's slices (lowest level first):", "",
                  "| model | scan | levels |", "|---|---|---|", *level_lines]
        print("\n".join(lines[-len(level_lines) - 5 :]), flush=True)
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
