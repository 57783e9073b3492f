"""Folded vs unfolded batch norms: the shipped network's speed on real CT, side by side in one run.

    python bench/fold_batch_norm.py [--model FILE] [--repeats 5]

The fast path (:class:`l3locator.engine.SliceClassifier`) runs a copy of the network with every
batch norm folded into the convolution before it (:func:`l3locator.resnet.fold_batch_norms`);
the reference (``score_volume``, ``--exhaustive``) runs the network as trained. This script
measures what the folding buys, the two arms interleaved in one process (A, B, A, B...) so that
a busy or throttled CPU hits both alike:

* **one network call**: ms per slice of random inputs at the batch sizes the fast path uses
  (float32 in 8s, bfloat16 autocast in 32s where this CPU has native bfloat16), median of
  ``--repeats``;
* **warm find_l3** on every real scan in ``../shared/data/real`` (``manifest.json``) resampled to
  500 slices, as ``bench/speed.py`` builds them, and on a 500-slice phantom: the fast path with the
  folding switched off and on (median of ``--repeats``), the answers compared;
* **how far the folded network is from the trained one** on each real scan (every slice): float32
  probabilities (max |difference|) and bfloat16 log-odds against float32 (max |difference|, the
  quantity the mixed-precision check bounds by ``SamplingPlan.bf16_logit_error`` = 0.3), unfolded
  and folded; and the time to fold.

Writes ``results/fold_batch_norm.md``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

import l3locator.engine as engine
from l3locator.engine import ScanSlices, SliceClassifier, native_bf16, score_slices, score_volume
from l3locator.modelfile import DEFAULT_MODEL_PATH, L3Model, load_model
from l3locator.pipeline import find_l3
from l3locator.reading import load_ct
from l3locator.resnet import fold_batch_norms

sys.path.insert(0, str(Path(__file__).resolve().parent))
from speed import BENCH_SLICES, load_line, phantom_500, real_scan_files, resample_slices, table  # noqa: E402

ARMS = ("unfolded", "folded")


def use_folding(on: bool) -> None:
    """Switch the folding of every SliceClassifier made from here on."""
    engine.fold_batch_norms = fold_batch_norms if on else (lambda network: network.eval())


def call_times(model: L3Model, repeats: int) -> list[list[object]]:
    """ms per slice of one network call, unfolded vs folded, per precision and batch size."""
    size = model.preprocessing.input_size
    settings = [("fp32", 8)] + ([("bf16", 32)] if native_bf16(torch.device("cpu")) else [])
    rows = []
    for precision, batch in settings:
        x = torch.rand(batch, 3, size, size)
        classifiers = {arm: SliceClassifier(model, "cpu", precision, fold_batch_norm=arm == "folded") for arm in ARMS}
        times: dict[str, list[float]] = {arm: [] for arm in ARMS}
        for arm in ARMS:
            classifiers[arm](x)  # untimed first call
        for _ in range(repeats):
            for arm in ARMS:
                started = time.perf_counter()
                classifiers[arm](x)
                times[arm].append((time.perf_counter() - started) / batch * 1000)
        unfolded, folded = (statistics.median(times[arm]) for arm in ARMS)
        rows.append([f"{precision}, batches of {batch}", f"{unfolded:.2f}", f"{folded:.2f}", f"{unfolded / folded:.2f}x"])
    return rows


def answer(result) -> tuple:
    return result.l3_slice_index, tuple(result.l3_slice_range or ()), tuple(result.flags)


def find_times(model: L3Model, volumes: list[tuple[str, object]], repeats: int) -> list[list[object]]:
    """Warm find_l3 seconds, unfolded vs folded (interleaved), and whether the answers agree."""
    rows = []
    for name, volume in volumes:
        times: dict[str, list[float]] = {arm: [] for arm in ARMS}
        answers = {}
        for arm in ARMS:  # untimed first calls
            use_folding(arm == "folded")
            answers[arm] = answer(find_l3(volume, model))
        for _ in range(repeats):
            for arm in ARMS:
                use_folding(arm == "folded")
                started = time.perf_counter()
                find_l3(volume, model)
                times[arm].append(time.perf_counter() - started)
        use_folding(True)
        unfolded, folded = (statistics.median(times[arm]) for arm in ARMS)
        rows.append([name, f"{unfolded:.2f}", f"{folded:.2f}", f"{unfolded / folded:.2f}x",
                     "yes" if answers["unfolded"] == answers["folded"] else f"**NO** {answers}"])
    return rows


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return np.log(p / (1 - p))


def drift_rows(model: L3Model, scans: list[tuple[str, object]]) -> list[list[object]]:
    """Per real scan: float32 folded vs the reference, bfloat16 vs float32 log-odds drift."""
    rows = []
    for name, volume in scans:
        reference = score_volume(model, volume)
        every = np.arange(volume.num_slices)

        def score(precision: str, fold: bool) -> np.ndarray:
            return score_slices(SliceClassifier(model, "cpu", precision, fold_batch_norm=fold), ScanSlices.of_volume(volume, model.preprocessing), every)

        unsaturated = (reference > 1e-6) & (reference < 1 - 1e-6)
        cells = [name, volume.num_slices, f"{np.abs(score('fp32', True) - reference).max():.1e}"]
        if native_bf16(torch.device("cpu")):
            cells += [f"{np.abs(logit(score('bf16', fold)) - logit(reference))[unsaturated].max():.3f}" for fold in (False, True)]
        rows.append(cells)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "fold_batch_norm.md"))
    args = parser.parse_args(argv)

    model = load_model(args.model)
    load_before = load_line()
    started = time.perf_counter()
    fold_s = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        fold_batch_norms(model.network)
        fold_s.append(time.perf_counter() - t)
    native = [(name, load_ct(path)) for name, path in real_scan_files()]
    resampled = [(f"{name} @ {BENCH_SLICES} slices", resample_slices(volume, BENCH_SLICES)) for name, volume in native]
    phantom, label = phantom_500()
    calls = call_times(model, args.repeats)
    finds = find_times(model, [*resampled, (label, phantom)], args.repeats)
    drifts = drift_rows(model, native)
    minutes = (time.perf_counter() - started) / 60
    bf16 = native_bf16(torch.device("cpu"))
    lines = [
        "# Folded batch norms: the shipped network, unfolded vs folded, side by side", "",
        f"Command: `python bench/fold_batch_norm.py --repeats {args.repeats}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}; torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"native bfloat16: {'yes' if bf16 else 'no'}; load average before {load_before}, after {load_line()}; {minutes:.1f} min  ",
        f"Model: `{Path(args.model).name}` ({model.arch}, {model.preprocessing.input_size} px). Method: this script's docstring. "
        f"Folding the network: {statistics.median(fold_s) * 1000:.0f} ms (median of {args.repeats}).", "",
        "## One network call (ms per slice, median)", "",
        *table(["precision", "unfolded", "folded", "speed-up"], calls), "",
        "## Warm find_l3 (s, median): the fast path with and without the folding", "",
        *table(["scan", "unfolded", "folded", "speed-up", "same answer"], finds), "",
        "## How far the folded network is from the trained one (every slice of each real scan)", "",
        *table(["scan", "slices", "fp32: max abs. probability difference, folded vs reference",
                *(["bf16 vs fp32 reference: max abs. log-odds difference, unfolded", "the same, folded"] if bf16 else [])], drifts), "",
        "bfloat16 log-odds differences are over the slices the reference does not saturate (probability in (1e-6, 1 - 1e-6)); "
        "the mixed-precision check assumes at most 0.3 (`SamplingPlan.bf16_logit_error`).", "",
    ]
    text = "\n".join(lines)
    Path(args.output).write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
