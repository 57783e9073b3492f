"""Average the weights of models fine-tuned from one parent (a "model soup"), then re-estimate batch norm.

    python tools/average_models.py OUTPUT DATA_DIR MODEL MODEL [MODEL ...]

The models must share architecture and preprocessing (the first one's settings, locate rule and
class names are kept). Every floating-point weight is the plain mean; the batch-norm population
statistics are then re-estimated on 4,000 slices of the training folder ``DATA_DIR`` (its
preprocessed-slice cache is reused: ``--cache-dir``, as given to training, default
``DATA_DIR/.l3locator-cache``), as training does after each stage. The output is stored in
float16 with the averaged models in its ``provenance["average_of"]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from l3locator.modelfile import load_model
from l3locator.training.bn_statistics import estimate_population_statistics
from l3locator.training.cache import prepare_cases
from l3locator.training.dataset import discover_cases

BN_STATISTICS_SLICES = 4000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("data_dir")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache-dir", help="preprocessed-slice cache (default DATA_DIR/.l3locator-cache)")
    args = parser.parse_args(argv)
    if len(args.models) < 2:
        parser.error("give at least two models")
    torch.set_num_threads(args.threads)
    models = [load_model(path) for path in args.models]
    first = models[0]
    for path, model in zip(args.models[1:], models[1:]):
        if model.arch != first.arch or model.preprocessing != first.preprocessing:
            parser.error(f"{path}: architecture or preprocessing differs from {args.models[0]}")
    states = [model.network.float().state_dict() for model in models]
    averaged = {key: (sum(state[key] for state in states) / len(states)) if value.is_floating_point() else value
                for key, value in states[0].items()}
    first.network.load_state_dict(averaged)
    cases = prepare_cases(discover_cases(args.data_dir).cases, first.preprocessing, args.cache_dir or str(Path(args.data_dir) / ".l3locator-cache"))
    used = estimate_population_statistics(first.network, cases, first.preprocessing, torch.device("cpu"), np.random.default_rng(0),
                                          max_slices=BN_STATISTICS_SLICES)
    first.provenance = {**first.provenance, "average_of": [Path(path).name for path in args.models], "bn_statistics_slices": used}
    path = first.save(args.output, half=True)
    print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
