"""Accuracy benchmark: held-out phantoms and every real scan in ../shared/data/real.

    python bench/accuracy.py [--model FILE] [--compare OLD_FILE] [--phantoms 24] [--vertebra-template MASK]
                             [--output bench/results/accuracy]

Writes ``<output>.md`` (tables) and ``<output>.csv`` (one row per case) and prints the summary.
Phantoms paint T9-L5 from a real vertebra mask (``--vertebra-template``; default: VerSe's
``verse004_vertebrae_T9-L5.nii.gz`` in ../shared/data/real where it exists, ``none`` for the
analytic shapes; :mod:`l3locator.phantoms.vertebra_templates`); the report says which were used.
Held-out phantoms use seeds from HELD_OUT_SEED upwards; training sets use seeds below it
(``tools/train_default_model.py``; validation during development used seeds 500,000+), so no
benchmark phantom is ever trained or tuned on.

Per case: predicted L3 slice, the truth (middle of the labelled L3 range) where known, the error
in slices and mm, the confidence and flags. Pass rules: a scan without L3 must come back with
``no_l3_found``; a scan whose L3 is cut by its edge must be answered inside or next to the
labelled part, or flagged ``l3_at_scan_edge`` with the found run at that same edge. The aggregation ablation compares the locate rule
with the naive argmax of the raw per-slice probabilities on the same scores. ``level_count`` is the
classical vertebra count's L3 range (:mod:`l3locator.level_count`; run by ``find_l3`` only when
L3 is found; both counts agreeing), ``one anchor a-b`` (the only count the scan allows),
``abstained`` or ``not run``; where the answer lies outside it the flags hold ``level_disagreement``
(and, with both counts and another of the network's runs centred in the counted range, the answer
moves there: ``level_count_answer``).

With ``--compare OLD_FILE`` every real scan is also scored with that model, and a table sets the
two models' answers, L3 errors, shares of non-L3 slices scored >= 0.5 and flags side by side.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from l3locator.labels import l3_range_from_vertebra_map
from l3locator.locate import smooth
from l3locator.modelfile import L3Model, load_model
from l3locator.pipeline import find_l3
from l3locator.phantoms import generate_phantom
from l3locator.phantoms.vertebra_templates import VertebraTemplates
from l3locator.reading import load_ct
from l3locator.volume import CTVolume

HELD_OUT_SEED = 1_000_000
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
#: Held-out phantom mix: (extent, slice thickness in mm), cycled over the seeds.
PHANTOM_MIX = (("abdomen", 5.0), ("abdomen", 2.5), ("whole_body", 3.0), ("abdomen", 1.25), ("chest", 3.0), ("l3_edge", 2.5))
#: Real vertebra mask (VerSe ids, T9-L5) the phantoms' spines are painted from by default, where present.
DEFAULT_VERTEBRA_TEMPLATE = SHARED_DATA / "real" / "verse004_vertebrae_T9-L5.nii.gz"


@dataclass
class Case:
    name: str
    kind: str  # phantom | real
    volume: CTVolume
    truth_range: tuple[int, int] | None
    truncated: bool = False


def vertebra_templates(mask: str | None) -> tuple[VertebraTemplates | None, str]:
    """The phantoms' vertebra templates and how to report them.

    ``mask``: a NIfTI vertebra label map, ``"none"`` for the analytic shapes, or None for the
    default (:data:`DEFAULT_VERTEBRA_TEMPLATE` where the file exists, else analytic).
    Returns the templates (None: analytic) and ``"templated from <file name>"`` or ``"analytic"``.
    """
    if mask is None:
        mask = str(DEFAULT_VERTEBRA_TEMPLATE) if DEFAULT_VERTEBRA_TEMPLATE.is_file() else "none"
    if mask.lower() == "none":
        return None, "analytic"
    return VertebraTemplates.from_mask(mask), f"templated from {Path(mask).name}"


def add_vertebra_template_option(parser: argparse.ArgumentParser) -> None:
    """``--vertebra-template MASK`` (see :func:`vertebra_templates`), shared with tools/validate_models.py."""
    parser.add_argument("--vertebra-template", metavar="MASK",
                        help=f"vertebra label map the phantoms' T9-L5 are painted from, or 'none' for the analytic shapes "
                        f"(default: {DEFAULT_VERTEBRA_TEMPLATE.name} in ../shared/data/real where it exists, else none)")


def phantom_cases(count: int, shape_ij: int, templates: VertebraTemplates | None = None) -> list[Case]:
    """Held-out phantoms (seeds from :data:`HELD_OUT_SEED`), spines from ``templates`` (None: analytic)."""
    cases = []
    for n in range(count):
        extent, thickness = PHANTOM_MIX[n % len(PHANTOM_MIX)]
        seed = HELD_OUT_SEED + n
        phantom = generate_phantom(seed, shape_ij=(shape_ij, shape_ij), slice_thickness_mm=thickness, extent=extent,
                                   vertebra_templates=templates)
        truncated = extent == "l3_edge"
        cases.append(Case(f"phantom-{seed}-{extent}-{thickness}mm", "phantom", phantom.volume, phantom.l3_range, truncated))
    return cases


#: Levels counted here where ../shared gives no label: two independent counts (from the sacrum and
#: from the lowest ribs) that agree, recorded in bench/results/acrin_level_count.md (slice ranges of
#: the vertebral bodies, discs excluded).
COUNTED_LEVELS = {"real/acrin_flt_breast001_abdomen_ct.nii.gz": {"L5": (31, 37), "L4": (39, 45), "L3": (47, 54), "L2": (56, 62),
                                                                 "L1": (64, 70), "T12": (72, 78)}}
COUNTED_L3 = {name: levels["L3"] for name, levels in COUNTED_LEVELS.items()}


def real_cases() -> list[Case]:
    manifest = SHARED_DATA / "manifest.json"
    if not manifest.is_file():
        print(f"note: {manifest} not found; real scans skipped", file=sys.stderr)
        return []
    cases = []
    for entry in json.loads(manifest.read_text()):
        if not entry.get("file"):
            continue  # a vertebra mask without its CT (shape reference only)
        volume = load_ct(SHARED_DATA / entry["file"])
        # The same truth rule as training: slices where L3 is the majority vertebra label.
        truth = l3_range_from_vertebra_map(load_ct(SHARED_DATA / entry["labels"]).voxels) if entry.get("labels") else COUNTED_L3.get(entry["file"])
        cases.append(Case(entry["file"], "real", volume, truth, bool(entry.get("L3_truncated_at_edge"))))
    return cases


def evaluate_case(model: L3Model, case: Case) -> dict:
    found = find_l3(case.volume, model, exhaustive=True)  # what `l3locator find --exhaustive` answers
    probabilities = np.asarray(found.slice_probabilities)
    thickness = case.volume.slice_thickness
    row = {
        "case": case.name, "kind": case.kind, "slices": case.volume.num_slices, "thickness_mm": round(thickness, 3),
        "truth_range": f"{case.truth_range[0]}-{case.truth_range[1]}" if case.truth_range else "none",
        "predicted": found.l3_slice_index if found.l3_found else "none",
        "confidence": round(found.confidence, 3), "flags": ";".join(found.flags) or "-",
        "level_count": level_count_text(found.extra.get("level_count")),
        # the network's mean score over each counted level's slices (what tells L3 from L2 and L4)
        "level_means": "; ".join(f"{level} {probabilities[a : b + 1].mean():.2f}" for level, (a, b) in COUNTED_LEVELS.get(case.name, {}).items()),
    }
    outside_l3 = np.ones(len(probabilities), dtype=bool)
    if case.truth_range is not None:
        outside_l3[case.truth_range[0] : case.truth_range[1] + 1] = False
    # the network alone: how much of the scan outside L3 it calls L3 (before the locate rule)
    row["non_l3_slices_ge_0.5"] = round(float(np.mean(probabilities[outside_l3] >= 0.5)), 3) if outside_l3.any() else ""
    # the margin to a false answer: the highest smoothed score outside L3, against the locate rule's threshold
    smoothed = smooth(probabilities, thickness, model.locate_rule)
    row["max_smoothed_outside_l3"] = round(float(smoothed[outside_l3].max()), 3) if outside_l3.any() else ""
    argmax = int(np.argmax(probabilities))
    if case.truth_range is None:
        row.update(error_slices="", error_mm="", argmax_error_slices="", passed="no_l3_found" in found.flags)
        return row
    first, last = case.truth_range
    truth = (first + last) / 2
    row["argmax_error_slices"] = round(abs(argmax - truth), 1)
    if not found.l3_found:
        row.update(error_slices="", error_mm="", passed=False)
        return row
    error = abs(found.l3_slice_index - truth)
    row.update(error_slices=round(error, 1), error_mm=round(error * thickness, 1))
    if case.truncated:
        # Inside or next to the labelled part, or flagged at the scan edge where L3 is cut
        # (a run at the opposite edge, also flagged l3_at_scan_edge, does not count).
        last_slice = case.volume.num_slices - 1
        cut_edges = {e for e, touches in ((0, first == 0), (last_slice, last == last_slice)) if touches}
        run_edges = {e for e in (0, last_slice) if e in found.l3_slice_range}
        row["passed"] = first - 1 <= found.l3_slice_index <= last + 1 or ("l3_at_scan_edge" in found.flags and bool(cut_edges & run_edges))
    else:
        row["passed"] = error <= 2
    return row


def level_count_text(count: dict | None) -> str:
    """The vertebra count of a result's ``extra["level_count"]``: its L3 range (both counts agreeing),
    ``one anchor a-b`` (the only count the scan allowed), ``abstained``, or ``not run`` (``find_l3``
    counts only when it found L3)."""
    if count is None:
        return "not run"
    if count["l3_slice_range"] is not None:
        return "{}-{}".format(*count["l3_slice_range"])
    return "one anchor {}-{}".format(*count["one_count_range"]) if count.get("one_count_range") else "abstained"


def truth_text(case: Case) -> str:
    """A real scan's L3 truth for the comparison table: the range and where it comes from, or ``none``."""
    if case.truth_range is None:
        return "none"
    source = "counted" if case.name in COUNTED_L3 else "labelled"
    return f"{case.truth_range[0]}-{case.truth_range[1]} ({source}{', cut at the edge' if case.truncated else ''})"


def model_text(model: L3Model) -> str:
    """A model for table headings: file name, architecture and input size (pixels)."""
    return f"`{model.name}` ({model.arch}, input {model.preprocessing.input_size})"


def comparison_lines(cases: list[Case], new_rows: list[dict], old_rows: list[dict], new: L3Model, old: L3Model) -> list[str]:
    """Markdown table: per real scan, the truth and each model's answer, error, non-L3 share >= 0.5 and flags."""
    per_model = (("answer", "predicted"), ("L3 error (slices)", "error_slices"), ("non-L3 slices >= 0.5", "non_l3_slices_ge_0.5"),
                 ("flags", "flags"))
    header = ["scan", "L3 truth"] + [f"{who}: {label}" for who in ("new", "old") for label, _ in per_model]
    lines = [f"## Real scans: new {model_text(new)} vs old {model_text(old)}", "",
             "Exhaustive float32 scoring as `l3locator find --exhaustive`; L3 error from the middle of the labelled or "
             "counted range (blank where the scan has no L3 or no answer); non-L3 slices >= 0.5: the share of slices "
             "outside L3 the network alone scores >= 0.5, before the locate rule.", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for case, new_row, old_row in zip(cases, new_rows, old_rows):
        cells = [case.name, truth_text(case)] + [str(row[key]) for row in (new_row, old_row) for _, key in per_model]
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def summarise(rows: list[dict]) -> dict:
    complete = [r for r in rows if r["kind"] == "phantom" and r["truth_range"] != "none" and "l3_edge" not in r["case"]]
    errors = np.array([r["error_slices"] if r["error_slices"] != "" else np.nan for r in complete], dtype=float)
    argmax = np.array([r["argmax_error_slices"] for r in complete], dtype=float)
    missed = int(np.isnan(errors).sum())
    found = errors[~np.isnan(errors)]
    return {
        "phantoms_with_full_L3": len(complete),
        "missed": missed,
        "mean_error_slices": float(found.mean()) if found.size else float("nan"),
        "sd_error_slices": float(found.std(ddof=1)) if found.size > 1 else float("nan"),
        "median_error_slices": float(np.median(found)) if found.size else float("nan"),
        "within_1": float(np.mean(found <= 1)) if found.size else float("nan"),
        "within_2": float(np.mean(found <= 2)) if found.size else float("nan"),
        "argmax_mean_error_slices": float(np.mean(argmax)) if argmax.size else float("nan"),
        "passed": f"{sum(bool(r['passed']) for r in rows)}/{len(rows)}",
    }


def write_tables(rows: list[dict], summary: dict, model: L3Model, output: Path, command: str, phantoms: str,
                 comparison: list[str] | None = None) -> None:
    output.parent.mkdir(parents=True, exist_ok=True)
    columns = list(rows[0])
    with open(output.with_suffix(".csv"), "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        "# Accuracy benchmark", "",
        f"Command: `{command}`  ", f"Model: `{model.name}` ({model.arch}, input {model.preprocessing.input_size}, channels {model.preprocessing.channel_mode}"
        f" ±{model.preprocessing.neighbor_offset_mm:g} mm; locate rule from the model file: {model.locate_rule.to_dict()})  ",
        f"Phantom vertebrae: {phantoms}", "",
        "## Summary (phantoms with the whole L3 in the scan)", "",
        "| metric | value |", "|---|---|",
        *[f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |" for k, v in summary.items()], "",
        "## Per case", "",
        "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
        *["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows], "",
        *(comparison or []),
    ]
    output.with_suffix(".md").write_text("\n".join(lines), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--phantoms", type=int, default=24, help="number of held-out phantoms")
    parser.add_argument("--phantom-size", type=int, default=256, help="phantom in-plane size (pixels)")
    add_vertebra_template_option(parser)
    parser.add_argument("--compare", metavar="OLD_MODEL", help="also score every real scan with this model and tabulate both")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "accuracy"), help="output path without suffix")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    old = load_model(args.compare) if args.compare else None
    templates, phantoms = vertebra_templates(args.vertebra_template)
    print(f"phantoms: {phantoms}", flush=True)
    rows, reals, old_rows = [], [], []
    for case in phantom_cases(args.phantoms, args.phantom_size, templates) + real_cases():
        row = evaluate_case(model, case)
        rows.append(row)
        print(" ".join(f"{k}={v}" for k, v in row.items()), flush=True)
        if old is not None and case.kind == "real":
            reals.append(case)
            old_rows.append(evaluate_case(old, case))
            print("  old: " + " ".join(f"{k}={v}" for k, v in old_rows[-1].items()), flush=True)
    summary = summarise(rows)
    print(json.dumps(summary, indent=2))
    comparison = comparison_lines(reals, [r for r in rows if r["kind"] == "real"], old_rows, model, old) if old is not None else None
    write_tables(rows, summary, model, Path(args.output), "python bench/accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:]),
                 phantoms, comparison)
    return 0


if __name__ == "__main__":
    sys.exit(main())
