"""Test-time batch-norm statistics: does adapting them to the scan clean the real-scan profiles?

    python bench/test_time_bn.py [--model MODEL] [--weights 0 0.5 1] [--phantoms 6] [--output bench/results/test_time_bn.md]

Issue 16 reports that re-estimating the batch-norm statistics on the scan itself (AdaBN) cut the
share of non-L3 slices scored >= 0.5 on held-out real CT, with two failure cases (a short 5 mm scan
lost L3; an abdomen's answer moved to a rival run). Here, per scan and per mixing weight ``w``,
every batch-norm layer's population mean and variance become the mixture of the model's own
(phantom) statistics and the scan's:

    mean = (1 - w) mean_model + w mean_scan
    var  = (1 - w) var_model + w var_scan + w (1 - w) (mean_model - mean_scan)^2

(``w = 0``: the model as shipped; ``w = 1``: AdaBN). The scan's statistics are the cumulative
average over all its slices, in batches of 32, as :mod:`l3locator.training.bn_statistics` does for
training slices. Each scan is then answered as ``l3locator find --exhaustive`` answers (:func:`accuracy.evaluate_case`:
the locate rule, the lung check and the vertebra count).
Scans: the real ones in ../shared and the first ``--phantoms`` held-out phantoms of
``bench/accuracy.py`` (same seeds). The model is not changed on disk; this is a measurement.
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

from accuracy import Case, evaluate_case, phantom_cases, real_cases, truth_text, vertebra_templates
from l3locator.engine import ScanSlices
from l3locator.modelfile import L3Model, load_model

BATCH = 32
#: The hand-written section of the report, kept when the script rewrites it.
READING = "## Reading"


def batch_norms(network: torch.nn.Module) -> list[torch.nn.modules.batchnorm._BatchNorm]:
    return [m for m in network.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]


def scan_statistics(model: L3Model, case: Case) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Per batch-norm layer, the (mean, variance) of its input over every slice of the scan."""
    network = copy.deepcopy(model.network).float()
    layers = batch_norms(network)
    for layer in layers:
        layer.reset_running_stats()
        layer.momentum = None  # cumulative average over the batches
    slices = ScanSlices.of_volume(case.volume, model.preprocessing)
    indices = np.arange(case.volume.num_slices)
    network.train()
    with torch.no_grad():
        for start in range(0, len(indices), BATCH):
            batch = indices[start : start + BATCH]
            if len(batch) > 1:
                network(slices.inputs(batch))
    return [(layer.running_mean.clone(), layer.running_var.clone()) for layer in layers]


def mixed_model(model: L3Model, statistics: list[tuple[torch.Tensor, torch.Tensor]], weight: float) -> L3Model:
    """A copy of ``model`` whose batch-norm statistics are the mixture with weight ``weight`` on the scan's."""
    mixed = copy.copy(model)
    mixed.network = copy.deepcopy(model.network).float()
    for layer, (mean_scan, var_scan) in zip(batch_norms(mixed.network), statistics):
        mean_model, var_model = layer.running_mean.clone(), layer.running_var.clone()
        layer.running_mean.copy_((1 - weight) * mean_model + weight * mean_scan)
        layer.running_var.copy_((1 - weight) * var_model + weight * var_scan + weight * (1 - weight) * (mean_model - mean_scan) ** 2)
    return mixed


def row(model: L3Model, case: Case, weight: float, statistics) -> list[str]:
    """One table row: the case answered as ``find_l3 --exhaustive`` with the mixed statistics."""
    found = evaluate_case(mixed_model(model, statistics, weight) if weight else model, case)
    return [case.name, truth_text(case), f"{weight:g}", str(found["predicted"]), str(found["error_slices"]), f"{found['confidence']:.2f}",
            found["flags"], f"{found['non_l3_slices_ge_0.5']:.3f}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--weights", type=float, nargs="+", default=[0.0, 0.5, 1.0], help="mixing weights on the scan's statistics")
    parser.add_argument("--phantoms", type=int, default=6, help="held-out phantoms (bench/accuracy.py's first seeds)")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "test_time_bn.md"))
    args = parser.parse_args(argv)
    model = load_model(args.model)
    templates, _ = vertebra_templates(None)
    cases = real_cases() + phantom_cases(args.phantoms, 256, templates)
    header = ["scan", "L3 truth", "w", "answer", "error (slices)", "confidence", "flags", "non-L3 >= 0.5"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    started = time.perf_counter()
    for case in cases:
        statistics = scan_statistics(model, case)
        for weight in args.weights:
            lines.append("| " + " | ".join(row(model, case, weight, statistics)) + " |")
            print(lines[-1], flush=True)
    report = ["# Test-time batch-norm statistics (issue 16)", "",
              f"Command: `python bench/test_time_bn.py {' '.join(argv if argv is not None else sys.argv[1:])}`  ",
              f"Model: `{model.name}`; {time.perf_counter() - started:.0f} s on this machine. Method: this script's docstring.", "", *lines, ""]
    output = Path(args.output)
    kept = output.read_text(encoding="utf-8").partition(READING)[2] if output.is_file() else ""
    output.write_text("\n".join(report) + (f"\n{READING}{kept}" if kept else ""), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
