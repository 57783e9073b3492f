"""Would an int8 screen make the fast path faster on real CT? A measurement, not a product change.

    python bench/int8_screen.py [--model MODEL] [--calibration-phantoms 8] [--phantoms 4] [--int8-bound 2.0]
                                [--repeats 3] [--output bench/results/int8_screen.md]

The default path (:mod:`l3locator.fast_scoring`) screens slices in bfloat16 and re-scores in
float32 the ones whose bfloat16 log-odds could change the answer (bound 0.3). CPUs with AVX512-VNNI
run int8 convolutions faster still. Here the shipped network is quantized post-training with
torch's FX graph mode (``torch.ao.quantization``, the ``x86`` engine: int8 activations and
per-channel int8 weights), calibrated on ``--calibration-phantoms`` phantoms (seeds 5,000,000+,
24 slices each; none of them a benchmark scan), and then measured three ways:

1. **Per-slice cost**: one network call on 16 slices of 128 px, fp32 (channels-last), bfloat16
   autocast, int8; and the time to build the int8 network (trace, calibrate, convert).
2. **Error**: on every slice of the real scans in ../shared (native spacing) and of ``--phantoms``
   held-out phantoms of ``bench/accuracy.py``, |log-odds - fp32 log-odds| for int8 and bfloat16.
3. **The fast path with an int8 screen**: warm ``find_l3`` on the real scans resampled to 500
   slices and the 500-slice phantom of ``bench/speed.py``, the shipped bfloat16 screen against an
   int8 screen certified with the bound ``--int8-bound`` (slices whose int8 log-odds could change
   the answer re-scored in float32, as for bfloat16); slices scored / re-scored, and whether the
   answer (slice, range, flags) equals exhaustive float32 scoring's.

For (3) the int8 network stands in for the bfloat16 screen inside ``score_coarse_to_fine`` (this
script swaps ``fast_scoring.SliceClassifier`` and the default ``SamplingPlan`` for the run); the
package itself is unchanged.
"""

from __future__ import annotations

import argparse
import copy
import random
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from accuracy import PHANTOM_MIX, phantom_cases, real_cases, vertebra_templates
from speed import answer_of, answer_text, cpu_name, load_line, phantom_500, resample_slices, table
from l3locator import fast_scoring
from l3locator.engine import ScanSlices, SliceClassifier
from l3locator.modelfile import DEFAULT_MODEL_PATH, L3Model, load_model
from l3locator.phantoms import generate_phantom
from l3locator.pipeline import find_l3

CALIBRATION_SEED = 5_000_000
CALIBRATION_SLICES_PER_PHANTOM = 24
BATCH = 16
#: The hand-written section of the report, kept when the script rewrites it.
READING = "## Reading"


def int8_network(model: L3Model, calibration: torch.Tensor) -> torch.nn.Module:
    """The model's network quantized to int8 (FX graph mode, ``x86`` engine), calibrated on ``calibration``."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.backends.quantized.engine = "x86"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prepared = prepare_fx(copy.deepcopy(model.network).float().eval(), get_default_qconfig_mapping("x86"), (calibration[:2],))
        with torch.inference_mode():
            for start in range(0, len(calibration), 32):
                prepared(calibration[start : start + 32])
        return convert_fx(prepared)


def calibration_inputs(model: L3Model, count: int, templates) -> torch.Tensor:
    """Network inputs of ``CALIBRATION_SLICES_PER_PHANTOM`` random slices of ``count`` phantoms."""
    rng = random.Random(0)
    inputs = []
    for n in range(count):
        extent, thickness = PHANTOM_MIX[n % len(PHANTOM_MIX)]
        volume = generate_phantom(CALIBRATION_SEED + n, shape_ij=(256, 256), slice_thickness_mm=thickness, extent=extent,
                                  vertebra_templates=templates).volume
        picked = sorted(rng.sample(range(volume.num_slices), min(CALIBRATION_SLICES_PER_PHANTOM, volume.num_slices)))
        inputs.append(ScanSlices.of_volume(volume, model.preprocessing).inputs(np.array(picked)))
    return torch.cat(inputs)


def log_odds(network, inputs: torch.Tensor, l3_column: int, bf16: bool = False) -> np.ndarray:
    out = []
    with torch.inference_mode():
        for start in range(0, len(inputs), BATCH):
            x = inputs[start : start + BATCH]
            if bf16:
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    logits = network(x.contiguous(memory_format=torch.channels_last)).float()
            else:
                logits = network(x).float()
            out.append((logits[:, l3_column] - logits[:, 1 - l3_column]).numpy())
    return np.concatenate(out)


def per_slice_ms(call, x: torch.Tensor, repeats: int = 6) -> float:
    with torch.inference_mode():
        call(x)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            call(x)
            times.append(time.perf_counter() - start)
    return 1000 * min(times) / len(x)


class Int8Screen(SliceClassifier):
    """A :class:`SliceClassifier` whose bfloat16 calls run the int8 network instead."""

    quantized: torch.nn.Module | None = None

    def __call__(self, inputs: torch.Tensor) -> np.ndarray:
        if self.precision != "bf16" or Int8Screen.quantized is None:
            return super().__call__(inputs)
        with torch.inference_mode():
            logits = Int8Screen.quantized(inputs.float())
        return torch.softmax(logits.float(), dim=1)[:, self.l3_column].numpy().astype(np.float64)


def warm_seconds(volume, model: L3Model, repeats: int) -> tuple[float, object]:
    find_l3(volume, model)
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = find_l3(volume, model)
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(DEFAULT_MODEL_PATH))
    parser.add_argument("--calibration-phantoms", type=int, default=8)
    parser.add_argument("--phantoms", type=int, default=4)
    parser.add_argument("--int8-bound", type=float, default=2.0, help="assumed bound on |int8 - fp32| L3 log-odds")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", default=str(Path(__file__).resolve().parent / "results" / "int8_screen.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    model = load_model(args.model)
    network = model.network.float().eval()
    l3_column = model.class_names.index("L3")
    templates, template_text = vertebra_templates(None)
    lines = ["# An int8 screen for the fast path (issue 13): a measurement", "",
             "Command: `" + " ".join(["python bench/int8_screen.py", *(argv if argv is not None else sys.argv[1:])]) + "`  ",
             f"Date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {cpu_name()}, {torch.get_num_threads()} threads, torch {torch.__version__}; "
             f"load average before: {load_line()}  ",
             f"Model: `{Path(args.model).name}` ({model.arch}, input {model.preprocessing.input_size} px); phantoms {template_text}; "
             f"calibration: {args.calibration_phantoms} phantoms (seeds {CALIBRATION_SEED:,}+), {CALIBRATION_SLICES_PER_PHANTOM} slices each", ""]

    calibration = calibration_inputs(model, args.calibration_phantoms, templates)
    build = []
    for _ in range(2):  # the first build includes torch.fx's first use
        start = time.perf_counter()
        quantized = int8_network(model, calibration)
        build.append(time.perf_counter() - start)
    x = calibration[:BATCH].contiguous()
    costs = {"fp32 (channels-last)": per_slice_ms(network, x.contiguous(memory_format=torch.channels_last))}

    def bf16(inputs):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return network(inputs)

    costs["bfloat16 autocast"] = per_slice_ms(bf16, x.contiguous(memory_format=torch.channels_last))
    costs["int8"] = per_slice_ms(quantized, x)
    lines += ["## Per-slice cost (one call on 16 slices)", "",
              *table(["precision", "ms per slice", "vs fp32"], [[k, f"{v:.2f}", f"{costs['fp32 (channels-last)'] / v:.1f}x"] for k, v in costs.items()]), "",
              f"Building the int8 network ({len(calibration)} calibration slices): {build[0]:.2f} s the first time in a process, "
              f"{build[1]:.2f} s the second.", ""]
    print("\n".join(lines), flush=True)

    rows, every_int8, every_bf16 = [], [], []
    real = real_cases()
    for case in real + phantom_cases(args.phantoms, 256, templates):
        inputs = ScanSlices.of_volume(case.volume, model.preprocessing).inputs(np.arange(case.volume.num_slices))
        reference = log_odds(network, inputs, l3_column)
        d8 = np.abs(log_odds(quantized, inputs, l3_column) - reference)
        d16 = np.abs(log_odds(network, inputs, l3_column, bf16=True) - reference)
        every_int8.append(d8)
        every_bf16.append(d16)
        rows.append([case.name, len(d8), f"{d8.max():.2f}", f"{np.percentile(d8, 99):.2f}", f"{d8.mean():.2f}", f"{d16.max():.2f}"])
        print(rows[-1], flush=True)
    every_int8, every_bf16 = np.concatenate(every_int8), np.concatenate(every_bf16)
    rows.append(["**all**", len(every_int8), f"**{every_int8.max():.2f}**", f"{np.percentile(every_int8, 99):.2f}", f"{every_int8.mean():.2f}",
                 f"**{every_bf16.max():.2f}**"])
    lines += ["## Error: |L3 log-odds - fp32's| on every slice", "",
              *table(["scan", "slices", "int8 max", "int8 99th percentile", "int8 mean", "bfloat16 max"], rows), ""]

    Int8Screen.quantized = quantized
    fast_scoring.SliceClassifier = Int8Screen
    shipped_plan = fast_scoring.score_coarse_to_fine.__kwdefaults__["plan"]
    int8_plan = fast_scoring.SamplingPlan(bf16_logit_error=args.int8_bound, bf16_cost=costs["int8"] / costs["fp32 (channels-last)"])
    scans = [(f"{case.name} @ 500 slices", resample_slices(case.volume, 500)) for case in real]
    volume, label = phantom_500()
    scans.append((label, volume))
    rows = []
    for name, volume in scans:
        start = time.perf_counter()
        exhaustive = find_l3(volume, model, exhaustive=True)
        exhaustive_s = time.perf_counter() - start
        arms = {}
        for arm, quantized_screen, plan in (("bfloat16", None, shipped_plan), ("int8", quantized, int8_plan)):
            Int8Screen.quantized = quantized_screen
            fast_scoring.score_coarse_to_fine.__kwdefaults__["plan"] = plan
            arms[arm] = warm_seconds(volume, model, args.repeats)
        fast_scoring.score_coarse_to_fine.__kwdefaults__["plan"] = shipped_plan
        row = [name, f"{exhaustive_s:.2f}"]
        for arm, (seconds, result) in arms.items():
            scoring = result.extra["scoring"]
            row += [f"**{seconds:.2f}**", f"{exhaustive_s / seconds:.1f}x", f"{scoring['slices_scored']} / {scoring['slices_rescored_fp32']}",
                    "yes" if answer_of(result) == answer_of(exhaustive) else "**NO**"]
        row.append(answer_text(answer_of(exhaustive)))
        rows.append(row)
        print(row, flush=True)
    lines += [f"## The fast path with an int8 screen (bound {args.int8_bound} log-odds) vs the shipped bfloat16 screen (bound "
              f"{shipped_plan.bf16_logit_error})", "",
              *table(["scan", "exhaustive fp32 s", "bfloat16 screen: warm s", "speed-up", "scored / re-scored fp32", "same answer",
                      "int8 screen: warm s", "speed-up", "scored / re-scored fp32", "same answer", "exhaustive answer"], rows), "",
              "warm s: median of the timed `find_l3` calls after one untimed call (the int8 network built beforehand, not timed). "
              "speed-up: exhaustive / warm. Same answer: slice, range and flags equal those of exhaustive float32 scoring.",
              f"Load average after: {load_line()}.", ""]
    output = Path(args.output)
    kept = output.read_text(encoding="utf-8").partition(READING)[2] if output.is_file() else ""
    text = "\n".join(lines) + (f"\n{READING}{kept}" if kept else "")
    output.write_text(text, encoding="utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
