"""Ablation: does going beyond the paper help? One row per (model, aggregation rule).

    python bench/ablation.py MODEL [MODEL ...] [--phantoms 24] [--output bench/results/ablation.md]

Each model is scored once on the held-out phantoms of ``bench/accuracy.py`` (same seeds) and the
real scans; its per-slice probabilities are then turned into one slice by two rules:

* ``locate rule``: the project's rule (``l3locator.locate``: smoothing in mm, heaviest run,
  weighted centre, flags);
* ``argmax``: the slice with the highest raw probability (the naive reading of a per-slice
  classifier, always answers).

Give models that differ in one thing (e.g. the same training recipe with ``--channel-mode repeat``,
the paper's input, and ``--channel-mode neighbors``, 2.5D) to read the effect of that thing.

The rules are applied to the probabilities alone: without the pipeline's anatomical check
(``l3locator.anatomy``), which ``bench/accuracy.py`` includes, so "negatives flagged" here counts
what each rule does by itself.

``real no-L3 slices called L3``: the share of the slices of the real scans without L3 whose raw
probability is at least 0.5 (how often the model mistakes real thoracic anatomy for L3; a
continuous view of what "negatives flagged" counts per scan).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from accuracy import phantom_cases, real_cases
from l3locator.engine import score_volume
from l3locator.locate import LocateRule, locate_l3
from l3locator.modelfile import load_model


def rule_errors(probabilities: np.ndarray, thickness: float, truth_range: tuple[int, int] | None, rules: dict[str, LocateRule]) -> dict[str, object]:
    """Error (slices) of each aggregation rule on one scan (None where a rule gives no slice);
    for a scan without L3, whether each locate rule flags it."""
    found = {name: locate_l3(probabilities, thickness, rule) for name, rule in rules.items()}
    if truth_range is None:
        return {name: not f.l3_found for name, f in found.items()}
    answers = {name: f.slice_index if f.l3_found else None for name, f in found.items()}
    answers["argmax"] = int(np.argmax(probabilities))
    truth = (truth_range[0] + truth_range[1]) / 2
    return {name: (abs(answer - truth) if answer is not None else None) for name, answer in answers.items()}


def rule_name(rule: LocateRule, own: bool) -> str:
    return f"locate rule, threshold {rule.threshold:g}" + (" (the model's)" if own else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--phantoms", type=int, default=24)
    parser.add_argument("--phantom-size", type=int, default=256)
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "ablation.md"))
    parser.add_argument("--thresholds", type=float, nargs="*", default=[],
                        help="also apply the locate rule with these thresholds (besides each model's own rule)")
    parser.add_argument("--title", default="input channels and aggregation rule", help="what the models compare (table title)")
    args = parser.parse_args(argv)

    cases = phantom_cases(args.phantoms, args.phantom_size) + real_cases()
    full = [c for c in cases if c.truth_range is not None and not c.truncated]
    negatives = [c for c in cases if c.truth_range is None]
    rows = []
    for path in args.models:
        model = load_model(path)
        scores = {c.name: score_volume(model, c.volume) for c in full + negatives}
        rules = {rule_name(model.locate_rule, True): model.locate_rule}
        rules.update({rule_name(r, False): r for r in (replace(model.locate_rule, threshold=t) for t in args.thresholds) if r != model.locate_rule})
        per_case = {c.name: rule_errors(scores[c.name], c.volume.slice_thickness, c.truth_range, rules) for c in full + negatives}
        real_negatives = [c for c in negatives if c.kind == "real"]
        called = [scores[c.name] >= 0.5 for c in real_negatives]
        called_share = f"{np.concatenate(called).mean():.2f}" if called else "n/a"
        augmentation = model.provenance.get("budget", {}).get("augmentation", "paper")
        for rule in [*rules, "argmax"]:
            errors = [per_case[c.name][rule] for c in full]
            found = np.array([e for e in errors if e is not None], dtype=float)
            rows.append({
                "model": Path(path).name, "channels": model.preprocessing.channel_mode, "augmentation": augmentation, "rule": rule,
                "mean ± SD (slices)": f"{found.mean():.2f} ± {found.std(ddof=1):.2f}" if found.size > 1 else "n/a",
                "median": f"{np.median(found):.1f}" if found.size else "n/a",
                "within 2": f"{np.mean(found <= 2):.2f}" if found.size else "n/a",
                "no answer": f"{len(errors) - found.size}/{len(errors)}",
                "negatives flagged": f"{sum(per_case[c.name][rule] for c in negatives)}/{len(negatives)}" if rule in rules else "never (always answers)",
                "real no-L3 slices called L3": called_share,
            })
            print(rows[-1], flush=True)
    columns = list(rows[0])
    lines = [
        "# Ablation: " + args.title, "",
        f"Command: `python bench/ablation.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
        f"Cases: {len(full)} scans with the whole L3 (held-out phantoms and real scans with labels), {len(negatives)} scans without L3.", "",
        "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns),
        *["| " + " | ".join(str(r[c]) for c in columns) + " |" for r in rows], "",
    ]
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text("\n".join(lines), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
