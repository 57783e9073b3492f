"""Compare candidate models (and locate-rule thresholds) on validation phantoms, to choose one.

    python tools/validate_models.py MODEL [MODEL ...] [--phantoms 48] [--thresholds 0.5 0.7 0.8] [--vertebra-template MASK]

Validation phantoms use seeds from 500,000 (the accuracy benchmark's mix of extents and slice
thicknesses): disjoint from the training seeds (below 500,000) and from the benchmark's held-out
seeds (1,000,000+), so choosing a model or a rule setting here does not tune it on the benchmark.
Answers go through the product's path (locate rule and anatomical check). Per model and
threshold it prints the mean / median / max L3 error (slices) on the phantoms with
the whole L3, how many chest-only phantoms come back ``no_l3_found``, and how many answers are
flagged ``low_confidence``. ``--crops N`` adds a second line per model and threshold: N spine crops
(:mod:`l3locator.phantoms.crops`) of validation abdomens (seeds 501,000+), the crops without L3
counted as negatives. The real scans are not used here: they are the benchmark's.
The phantoms' T9-L5 are painted from a real vertebra mask as in the benchmark
(``--vertebra-template``: default VerSe's mask in ../shared where it exists, ``none`` for the
analytic shapes); the first line printed says which.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
from accuracy import PHANTOM_MIX, add_vertebra_template_option, vertebra_templates  # noqa: E402

from l3locator.engine import score_volume  # noqa: E402
from l3locator.locate import LocateRule  # noqa: E402
from l3locator.modelfile import load_model  # noqa: E402
from l3locator.phantoms import Phantom, generate_phantom  # noqa: E402
from l3locator.phantoms.crops import crop_around_spine, crop_generator  # noqa: E402
from l3locator.phantoms.vertebra_templates import VertebraTemplates  # noqa: E402
from l3locator.pipeline import L3Result, result_from_probabilities  # noqa: E402

VALIDATION_SEED = 500_000
#: First seed of the validation abdomens cut into spine crops (``--crops``).
CROP_VALIDATION_SEED = 501_000


def validation_phantoms(count: int, size: int, templates: VertebraTemplates | None = None) -> list[Phantom]:
    """The first ``count`` validation phantoms (l3_edge ones left out; spines from ``templates``,
    None: analytic), generated once for every model compared."""
    phantoms = []
    for n in range(count):
        extent, thickness = PHANTOM_MIX[n % len(PHANTOM_MIX)]
        if extent != "l3_edge":
            phantoms.append(generate_phantom(VALIDATION_SEED + n, shape_ij=(size, size), slice_thickness_mm=thickness, extent=extent,
                                             vertebra_templates=templates))
    return phantoms


def validation_crops(count: int, size: int, templates: VertebraTemplates | None = None) -> list[Phantom]:
    """``count`` spine crops of validation abdomens (seeds from :data:`CROP_VALIDATION_SEED`, slice
    thicknesses as the phantom mix's abdomens)."""
    thicknesses = [thickness for extent, thickness in PHANTOM_MIX if extent == "abdomen"]
    crops = []
    for n in range(count):
        seed = CROP_VALIDATION_SEED + n
        phantom = generate_phantom(seed, shape_ij=(size, size), slice_thickness_mm=thicknesses[n % len(thicknesses)], extent="abdomen",
                                   vertebra_templates=templates)
        crops.append(crop_around_spine(phantom, crop_generator(seed)))
    return crops


def validation_answers(model_path: str, phantoms: list[Phantom], rules: list[LocateRule]) -> list[tuple[tuple[int, int] | None, list[L3Result]]]:
    """Per validation phantom: its L3 range (or None) and the answer under each rule.

    Answers come from the product's path (:func:`~l3locator.pipeline.result_from_probabilities`:
    the locate rule and the anatomical check) on one exhaustive float32 scoring per phantom.
    """
    model = load_model(model_path)
    answers = []
    for phantom in phantoms:
        probabilities = score_volume(model, phantom.volume)
        results = [result_from_probabilities(phantom.volume, probabilities, model_name=model.name, seconds=0.0, rule=rule) for rule in rules]
        answers.append((phantom.l3_range, results))
    return answers


def summary(answers: list, which: int, negatives_name: str = "chest") -> str:
    errors, negatives_flagged, negatives, low = [], 0, 0, 0
    for truth, results in answers:
        found = results[which]
        if truth is None:
            negatives += 1
            negatives_flagged += not found.l3_found
            continue
        errors.append(abs(found.l3_slice_index - (truth[0] + truth[1]) / 2) if found.l3_found else np.nan)
        low += "low_confidence" in found.flags
    e = np.array(errors, dtype=float)
    found_e = e[~np.isnan(e)]
    spread = f"mean {found_e.mean():.2f}  median {np.median(found_e):.2f}  max {found_e.max():.1f}" if found_e.size else "mean -  median -  max -"
    return (f"{spread}  missed {int(np.isnan(e).sum())}/{len(e)}"
            f"  {negatives_name} flagged {negatives_flagged}/{negatives}  low_confidence {low}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--phantoms", type=int, default=48, help="validation phantoms (seeds 500,000 onwards)")
    parser.add_argument("--crops", type=int, default=0, help="also validate on this many spine crops (seeds 501,000 onwards)")
    parser.add_argument("--phantom-size", type=int, default=256)
    parser.add_argument("--thresholds", type=float, nargs="+", default=[LocateRule().threshold])
    add_vertebra_template_option(parser)
    args = parser.parse_args(argv)
    rules = [LocateRule(threshold=threshold) for threshold in args.thresholds]
    templates, phantoms = vertebra_templates(args.vertebra_template)
    print(f"validation phantoms (seeds {VALIDATION_SEED:,}+): {phantoms}", flush=True)
    validation = validation_phantoms(args.phantoms, args.phantom_size, templates)
    crops = validation_crops(args.crops, args.phantom_size, templates)
    for path in args.models:
        answers = validation_answers(path, validation, rules)
        crop_answers = validation_answers(path, crops, rules) if crops else []
        for which, rule in enumerate(rules):
            print(f"{Path(path).name}  threshold {rule.threshold}:  {summary(answers, which)}", flush=True)
            if crop_answers:
                print(f"{Path(path).name}  threshold {rule.threshold}, {len(crops)} spine crops:  {summary(crop_answers, which, 'without L3')}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
