"""Store a locate rule in a model file (chosen with ``tools/validate_models.py``), keeping everything else.

    python tools/set_locate_rule.py MODEL --threshold 0.9 --output OUT --reason "validation: ..."

The rule turns the model's per-slice probabilities into one answer (``l3locator.locate``); how
sharp a model's probabilities are depends on how it was trained, so the threshold is chosen per
model on validation phantoms and travels in its file. The reason is recorded in the provenance. The weights are written in float16.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from l3locator.modelfile import load_model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("--output", required=True, help="model file to write (may be MODEL itself)")
    parser.add_argument("--threshold", type=float, help="probability a smoothed run must reach")
    parser.add_argument("--smoothing-mm", type=float, help="Gaussian smoothing sigma (mm)")
    parser.add_argument("--reason", required=True, help="how the rule was chosen (recorded in the provenance)")
    args = parser.parse_args(argv)
    model = load_model(args.model)
    changes = {k: v for k, v in (("threshold", args.threshold), ("smoothing_mm", args.smoothing_mm)) if v is not None}
    model.locate_rule = replace(model.locate_rule, **changes)
    model.provenance["locate_rule"] = {**model.locate_rule.to_dict(), "chosen_by": args.reason}
    path = model.save(args.output, half=True)  # float16 weights, like the shipped model
    print(f"wrote {path}: locate rule {model.locate_rule.to_dict()}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
