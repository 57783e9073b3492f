"""Level probe (issue 16): does the network know *which* vertebra a slice shows, in a way that holds
on real CT?

    python bench/level_probe.py [--model FILE] [--train 40] [--test 12] [--output bench/results/level_probe.md]

The shipped classifier is trained for L3 / not-L3 only, and on the real ACRIN abdomen it scores L2
and L3 alike. This asks whether its penultimate layer (the 2048 pooled features its last layer
reads) still orders the levels. A ridge regression from those features to the vertebral level
(L1 = 0, L2 = 1, L3 = 2, ..., T12 = -1; the majority vertebra label of each slice, T10-L5) is fitted
on phantom slices (seeds from 600,000, T9-L5 painted from the VerSe mask where it exists, every
second slice), then read on held-out phantoms (seeds from 700,000, every third slice) and on the
hand-counted levels of the real ACRIN abdomen (``results/acrin_level_count.md``).

If it does, a learned level estimate (a regression head trained on phantoms beside the L3 head)
is a route to level identity that needs no sacrum or ribs in the scan, unlike the vertebra count.
Features: float32, every slice exactly as ``l3locator find --exhaustive`` feeds the network.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from accuracy import SHARED_DATA, vertebra_templates
from acrin_level_count import LEVELS as ACRIN_LEVELS
from l3locator.atomic import write_atomically
from l3locator.engine import ScanSlices, SliceClassifier
from l3locator.locate import weighty_runs
from l3locator.modelfile import L3Model, load_model
from l3locator.phantoms import generate_phantom
from l3locator.pipeline import find_l3
from l3locator.reading import load_ct
from l3locator.volume import CTVolume

TRAIN_SEED, TEST_SEED = 600_000, 700_000
#: VerSe id -> level number (L1 = 0): T10 ... L5.
LEVEL_OF_LABEL = {17: -3, 18: -2, 19: -1, 20: 0, 21: 1, 22: 2, 23: 3, 24: 4}
LEVEL_NAMES = {-3: "T10", -2: "T11", -1: "T12", 0: "L1", 1: "L2", 2: "L3", 3: "L4", 4: "L5"}
PHANTOM_MIX = (("abdomen", 2.5), ("abdomen", 5.0), ("whole_body", 3.0), ("abdomen", 1.25))
RIDGE = 100.0  # on standardised features


class PooledFeatures:
    """The 2048 pooled features the model's last layer reads, per slice (float32 scoring)."""

    def __init__(self, model: L3Model) -> None:
        self.model = model
        self.classify = SliceClassifier(model, "cpu", "fp32")
        self._last: torch.Tensor | None = None
        model.network.fc.register_forward_hook(self._keep)

    def _keep(self, module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor) -> None:
        self._last = inputs[0].detach().float().clone()

    def __call__(self, volume: CTVolume, indices: list[int], batch: int = 16) -> np.ndarray:
        slices = ScanSlices.of_volume(volume, self.model.preprocessing)
        rows = []
        for start in range(0, len(indices), batch):
            self.classify(slices.inputs(np.asarray(indices[start : start + batch])))
            rows.append(self._last.numpy())
        return np.concatenate(rows) if rows else np.zeros((0, self.model.network.fc.in_features), np.float32)


def phantom_slices(features: PooledFeatures, seed: int, step: int, templates) -> tuple[np.ndarray, np.ndarray]:
    """Features and level numbers of every ``step``-th slice of phantom ``seed`` that lies in T10-L5."""
    extent, thickness = PHANTOM_MIX[seed % len(PHANTOM_MIX)]
    phantom = generate_phantom(seed, shape_ij=(256, 256), slice_thickness_mm=thickness, extent=extent, vertebra_templates=templates)
    indices, levels = [], []
    for k in range(0, phantom.volume.num_slices, step):
        labels = phantom.vertebra_labels[k][phantom.vertebra_labels[k] > 0]
        if labels.size:
            values, counts = np.unique(labels, return_counts=True)
            majority = int(values[np.argmax(counts)])
            if majority in LEVEL_OF_LABEL:
                indices.append(k)
                levels.append(LEVEL_OF_LABEL[majority])
    return features(phantom.volume, indices), np.asarray(levels, dtype=np.float64)


def fit_ridge(x: np.ndarray, y: np.ndarray):
    """A ridge regression on standardised features; returns ``predict(features) -> levels``."""
    mean, scale = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / scale
    weights = np.linalg.solve(z.T @ z + RIDGE * np.eye(z.shape[1]), z.T @ (y - y.mean()))
    return lambda f: ((f - mean) / scale) @ weights + y.mean()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--train", type=int, default=40, help="phantoms to fit the probe on")
    parser.add_argument("--test", type=int, default=12, help="held-out phantoms to read it on")
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "level_probe.md"))
    args = parser.parse_args()
    model = load_model(args.model)
    features = PooledFeatures(model)
    templates, template_text = vertebra_templates(None)  # the VerSe mask where it exists
    x, y = zip(*[phantom_slices(features, TRAIN_SEED + n, 2, templates) for n in range(args.train)])
    x, y = np.concatenate(x), np.concatenate(y)
    predict = fit_ridge(x, y)
    xt, yt = zip(*[phantom_slices(features, TEST_SEED + n, 3, templates) for n in range(args.test)])
    xt, yt = np.concatenate(xt), np.concatenate(yt)
    estimate = predict(xt)
    lines = ["# Level probe: does the network's last hidden layer know the level? (issue 16)", "",
             f"`python bench/level_probe.py` — model `{Path(model.source).name}` ({model.arch}, "
             f"{model.preprocessing.input_size} px, ±{model.preprocessing.neighbor_offset_mm:g} mm). Phantom vertebrae: {template_text}.",
             f"A ridge regression (λ = {RIDGE:g} on standardised features) from the 2048 pooled features to the level "
             "(L1 = 0, L3 = 2, T12 = -1), fitted on "
             f"{len(y)} slices of {args.train} phantoms (seeds {TRAIN_SEED:,}+), mean absolute error there {np.abs(predict(x) - y).mean():.2f} levels.",
             "", f"## Held-out phantoms ({args.test}, seeds {TEST_SEED:,}+, {len(yt)} slices): mean absolute error "
             f"{np.abs(estimate - yt).mean():.2f} levels", "", "| level | slices | mean estimate | target |", "|---|---|---|---|"]
    for level in sorted(set(yt.astype(int))):
        chosen = yt == level
        lines.append(f"| {LEVEL_NAMES[level]} | {int(chosen.sum())} | {estimate[chosen].mean():.2f} | {level} |")
    acrin = SHARED_DATA / "real" / "acrin_flt_breast001_abdomen_ct.nii.gz"
    if acrin.is_file():
        volume = load_ct(acrin)
        lines += ["", "## Real: the ACRIN abdomen, levels counted by hand (4.25 mm slices)", "",
                  "| level | slices | mean estimate | target | per slice |", "|---|---|---|---|---|"]
        for name, (first, last) in sorted(ACRIN_LEVELS.items(), key=lambda item: item[1]):
            level = {v: k for k, v in LEVEL_NAMES.items()}[name]
            values = predict(features(volume, list(range(first, last + 1))))
            lines.append(f"| {name} | {first}–{last} | {values.mean():.2f} | {level} | {' '.join(f'{v:.1f}' for v in values)} |")
        # The candidates the locate rule weighs there, each read by the probe: would the level pick the L3 run?
        network_alone = find_l3(volume, model, exhaustive=True, anatomy_check=False, level_check=False)
        lines += ["", "The network's candidate runs on ACRIN (locate rule, no checks; heaviest first) and the probe's "
                  "mean level over each run's slices:", "", "| run | centre | mean estimate |", "|---|---|---|"]
        for (first, last), centre in weighty_runs(np.asarray(network_alone.slice_probabilities), volume.slice_thickness, model.locate_rule):
            lines.append(f"| {first}–{last} | {centre} | {predict(features(volume, list(range(first, last + 1)))).mean():.2f} |")
    else:
        print(f"note: {acrin} not found; real scan skipped", file=sys.stderr)
    text = "\n".join(lines) + "\n"
    write_atomically(args.output, lambda tmp: Path(tmp).write_text(text))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
