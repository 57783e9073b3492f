"""Speed benchmark: find L3 in a 512x512x500 CT, end to end from the files, warm and cold.

    python bench/speed.py [--model FILE] [--volume PATH] [--slices 500] [--repeats 3]
                          [--surrogate resnet50:224|none] [--answer-phantoms 24] [--compile]
                          [--output bench/results/speed]

Model: ``--model``, else the shipped default model when present, else an *untrained* ResNet50
at 224 pixels (``--untrained-arch`` and ``--untrained-input`` change it). Timings are right for an untrained
network, but its probabilities are noise, so which slices the fast path refines and the answer
comparisons only mean something for a trained model; the table says which model was used.

Volume: ``--volume`` (any scan ``load_ct`` reads), else a phantom drawn at 512 x 512 with 1 mm
slices and cut to ``--slices`` slices around L3. It is written as NIfTI (``.nii.gz``) and as a
DICOM series into a temporary folder, and every configuration reads it from there.

Configurations, each run in its own worker process (so peak RSS is its own):

* ``baseline``: ``find_l3(exhaustive=True)``: every slice, eager float32 (the reference).
* ``all-fp32-cl`` / ``all-bf16``: every slice with the faster backends (channels-last float32,
  bfloat16 autocast): what the backend alone gives.
* ``c2f-fp32`` / ``c2f-bf16``: coarse-to-fine in float32 / in bfloat16 alone.
* ``default``: ``find_l3()`` as shipped (coarse-to-fine, precision ``auto``: bfloat16 screening
  with float32 re-scoring of the unsaturated slices near candidate runs), from the NIfTI file
  and from the DICOM series.
* ``c2f-compiled`` (``--compile``): coarse-to-fine through ``torch.compile`` (bf16 where
  native); the first call includes the compilation.

Scaling (``--surrogate resnet50:224``, the default): ``baseline``, ``c2f-fp32`` and ``default``
(NIfTI and DICOM) again with every slice also run through an untrained ResNet50 at 224 px whose
output is discarded: the answers (so the slices scored) are the model's, the cost about the
paper's network's, in the batches the library picks for a 224 px network (8 slices, every
configuration alike). This shows how the speed-up grows with the network's cost without a
trained ResNet50.

Warm (the model loaded in a long-lived process, as in Slicer): one untimed run, then the median
of ``--repeats`` timed runs of reading the file plus ``find_l3``. Cold: a new process
``python -m l3locator find FILE --model M --json``, wall time (imports, model load, read,
find). Slices/s is the scan's slice count over the seconds per scan.

Answers: each configuration's L3 answer is compared with the baseline's; then, on the accuracy
benchmark's held-out phantoms (``bench/accuracy.py``) and every real scan in
``../shared/data/real``, the default path is compared with exhaustive float32 scoring.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from l3locator.engine import SliceClassifier, default_batch_size, resolve_precision, score_volume
from l3locator.fast_scoring import SamplingPlan, score_coarse_to_fine
from l3locator.modelfile import DEFAULT_MODEL_PATH, L3Model, build_network, load_model
from l3locator.phantoms import generate_phantom
from l3locator.pipeline import L3Result, find_l3, result_from_probabilities
from l3locator.preprocessing import PreprocessingConfig
from l3locator.reading import load_ct
from l3locator.volume import CTVolume
from l3locator.phantoms.writing import write_dicom_series, write_nifti

BENCH = Path(__file__).resolve().parent
PHANTOM_SEED = 20240500
#: (name, input format, what it runs): see the module docstring.
CONFIGS = (
    ("baseline", "nifti", "every slice, eager fp32 (find_l3 exhaustive=True)"),
    ("all-fp32-cl", "nifti", "every slice, fp32 channels-last"),
    ("all-bf16", "nifti", "every slice, bf16 autocast channels-last"),
    ("c2f-fp32", "nifti", "coarse-to-fine, fp32 channels-last"),
    ("c2f-bf16", "nifti", "coarse-to-fine, bf16 only (no fp32 re-scoring)"),
    ("default", "nifti", "find_l3() default: coarse-to-fine, precision auto"),
    ("default", "dicom", "find_l3() default: coarse-to-fine, precision auto"),
)
COMPILED = ("c2f-compiled", "nifti", "coarse-to-fine, torch.compile (freezing), precision auto")
SURROGATE_CONFIGS = tuple(c for c in CONFIGS if c[0] in ("baseline", "c2f-fp32", "default"))
#: A coarse step below any slice thickness makes score_coarse_to_fine score every slice.
EVERY_SLICE = SamplingPlan(coarse_step_mm=1e-3)


# ---------------------------------------------------------------------------------------------
# Worker: one configuration in its own process
# ---------------------------------------------------------------------------------------------
def answer_of(result: L3Result) -> str:
    """The answer compared between configurations: L3 slice and range, or 'none'."""
    if not result.l3_found:
        return "none"
    return f"{result.l3_slice_index} ({result.l3_slice_range[0]}-{result.l3_slice_range[1]})"


def find_with(config: str, model: L3Model, volume: CTVolume, batch_size: int | None = None) -> L3Result:
    """Score and locate ``volume`` the way configuration ``config`` does (``batch_size``: None
    for the library's default)."""
    if config == "baseline":
        return find_l3(volume, model, exhaustive=True, batch_size=batch_size)
    if config in ("c2f-fp32", "c2f-bf16"):
        return find_l3(volume, model, precision=config[4:], batch_size=batch_size)
    if config in ("default", "c2f-compiled"):
        return find_l3(volume, model, batch_size=batch_size)
    precision = {"all-fp32-cl": "fp32", "all-bf16": "bf16"}[config]
    started = time.perf_counter()
    curve = score_coarse_to_fine(model, volume, rule=model.locate_rule, plan=EVERY_SLICE, precision=precision, batch_size=batch_size)
    result = result_from_probabilities(volume, curve.probabilities, model_name=model.name, seconds=time.perf_counter() - started, rule=model.locate_rule)
    result.extra["scoring"] = curve.summary()
    return result


def compile_network(model: L3Model) -> None:
    """Replace the network by its ``torch.compile`` version (weights frozen as constants)."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    model.network = torch.compile(model.network.eval().to(memory_format=torch.channels_last))


class CostSurrogate(torch.nn.Module):
    """The model's own network, plus an untrained ``arch`` at ``size`` px run on the same slices.

    The answer (and so which slices coarse-to-fine scores) is the model's; the cost is about that
    of the bigger network, which shows how the speed-up scales to it (e.g. the paper's ResNet50
    at 224 px) without a trained one. The extra network's output is computed and discarded.
    """

    def __init__(self, network: torch.nn.Module, arch: str, size: int) -> None:
        super().__init__()
        self.network = network
        self.extra = build_network(arch).eval()
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        resized = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        self.extra(resized.contiguous(memory_format=torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format))
        return self.network(x)


def run_worker(config: str, model_path: str, scan: str, repeats: int, surrogate: str | None = None) -> dict:
    """Time ``config`` on ``scan``: one untimed run, then ``repeats`` timed runs (read + find).

    ``surrogate`` (``"ARCH:SIZE"``) wraps the network in a :class:`CostSurrogate`.
    """
    model = load_model(model_path)
    batch_size = None
    if surrogate:
        arch, size = surrogate.split(":")
        model.network = CostSurrogate(model.network, arch, int(size))
        # batches sized for the bigger network, as the library sizes them for a model of its
        # input (at 224 px: 8 in every precision), in every configuration alike
        batch_size = default_batch_size(int(size), torch.device("cpu"), "fp32")
    if config == "c2f-compiled":
        compile_network(model)

    def once() -> tuple[float, float, L3Result]:
        started = time.perf_counter()
        volume = load_ct(scan)
        read = time.perf_counter() - started
        result = find_with(config, model, volume, batch_size)
        return time.perf_counter() - started, read, result

    first, _, _ = once()
    runs = [once() for _ in range(repeats)]
    result = runs[-1][2]
    return {
        "first_s": first,
        "warm_s": statistics.median(r[0] for r in runs),
        "read_s": statistics.median(r[1] for r in runs),
        "find_s": statistics.median(r[0] - r[1] for r in runs),
        "slices_scored": result.extra["scoring"]["slices_scored"],
        "slices_rescored_fp32": result.extra["scoring"]["slices_rescored_fp32"],
        "precision": result.extra["scoring"]["precision"],
        "strategy": result.extra["scoring"]["strategy"],
        "num_slices": result.num_slices,
        "answer": answer_of(result),
        "peak_rss_mb": peak_rss_mb(),
    }


def run_throughput(sizes: list[int]) -> list[dict]:
    """Network-only slices/s of ResNet50 and ResNet18 at each input size and backend, in the
    batches the library uses for that size and precision."""
    rows = []
    for arch, size in ((arch, size) for arch in ("resnet50", "resnet18") for size in sizes):
        torch.manual_seed(0)
        model = L3Model.new(arch, PreprocessingConfig(input_size=size))
        for backend in ("eager fp32", "fp32 channels-last", "bf16 autocast channels-last"):
            batch = default_batch_size(size, torch.device("cpu"), "bf16" if backend.startswith("bf16") else "fp32")
            x = torch.rand(batch, 3, size, size)
            if backend == "eager fp32":
                network = model.network.eval()

                def call(inputs: torch.Tensor) -> None:
                    with torch.inference_mode():
                        network(inputs)
            else:
                call = SliceClassifier(model, "cpu", "fp32" if backend.startswith("fp32") else "bf16")
            call(x)
            repeats = max(3, 48 // batch)
            started = time.perf_counter()
            for _ in range(repeats):
                call(x)
            rows.append({"arch": arch, "input": size, "backend": backend, "batch": batch, "slices_per_s": repeats * batch / (time.perf_counter() - started)})
    return rows


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------
@dataclass
class Timed:
    config: str
    source: str
    description: str
    stats: dict


def child(args: list[str]) -> tuple[float, str, str]:
    """Run a command; return (wall seconds, stdout, stderr). Raises on failure."""
    started = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    return wall, proc.stdout, proc.stderr


def peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM; unlike ru_maxrss not inherited from a parent)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def cold_run(args: list[str]) -> tuple[float, float | None, str]:
    """Run a command in a new process; return (wall s, peak RSS MB or None, stdout).

    Peak RSS comes from GNU ``/usr/bin/time`` when present: a parent's own RSS would otherwise
    leak into the child's ``ru_maxrss`` (it is carried over ``fork``/``exec``).
    """
    timer = Path("/usr/bin/time")
    if not timer.is_file():
        wall, out, _ = child(args)
        return wall, None, out
    wall, out, err = child([str(timer), "-f", "%M", *args])
    return wall, int(err.strip().splitlines()[-1]) / 1024, out


def worker_command(*extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *extra]


def benchmark_volume(args: argparse.Namespace) -> tuple[CTVolume, str]:
    """The volume to time, and a line describing it."""
    if args.volume:
        volume = load_ct(args.volume)
        return volume, f"`{args.volume}`: {volume.describe()}"
    phantom = generate_phantom(PHANTOM_SEED, shape_ij=(512, 512), slice_thickness_mm=1.0, extent="whole_body")
    volume, n = phantom.volume, args.slices
    l3 = phantom.l3_range or (volume.num_slices // 2, volume.num_slices // 2)
    start = int(np.clip((l3[0] + l3[1]) // 2 - int(0.4 * n), 0, max(0, volume.num_slices - n)))
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, 3] += start * matrix[:3, 2]
    cropped = CTVolume(np.ascontiguousarray(volume.voxels[start : start + n]), matrix, source=f"phantom:{PHANTOM_SEED}")
    truth = f"labelled L3 slices {l3[0] - start}-{l3[1] - start}" if phantom.l3_range else "no L3"
    return cropped, f"phantom seed {PHANTOM_SEED} (whole body, 1 mm), cut to {cropped.num_slices} slices of 512 x 512; {truth}"


def acceptance_rows(model: L3Model, phantoms: int, phantom_size: int) -> list[dict]:
    """Default path vs exhaustive fp32 on the accuracy benchmark's cases."""
    sys.path.insert(0, str(BENCH))
    from accuracy import phantom_cases, real_cases

    rows = []
    for case in phantom_cases(phantoms, phantom_size) + real_cases():
        started = time.perf_counter()
        reference = result_from_probabilities(case.volume, score_volume(model, case.volume), model_name=model.name, seconds=0.0, rule=model.locate_rule)
        middle = time.perf_counter()
        fast = find_l3(case.volume, model)
        done = time.perf_counter()
        rows.append({
            "case": case.name, "slices": case.volume.num_slices, "thickness_mm": round(case.volume.slice_thickness, 3),
            "scored": fast.extra["scoring"]["slices_scored"], "rescored_fp32": fast.extra["scoring"]["slices_rescored_fp32"],
            "exhaustive_fp32": answer_of(reference), "default_path": answer_of(fast),
            "flags_equal": reference.flags == fast.flags, "exhaustive_s": round(middle - started, 2), "default_s": round(done - middle, 2),
            "match": answer_of(reference) == answer_of(fast),
        })
        print(f"  {rows[-1]}", flush=True)
    return rows


def load_line() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3]) if Path("/proc/loadavg").is_file() else "n/a"


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def table(columns: list[str], rows: list[list[object]]) -> list[str]:
    return ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns), *["| " + " | ".join(str(c) for c in r) + " |" for r in rows]]


def timed_table(timed: list[Timed]) -> list[str]:
    """Markdown rows of warm timings, speed-ups against the ``baseline`` row of the same list."""
    baseline = next(t for t in timed if t.config == "baseline").stats
    rows = []
    for t in timed:
        s = t.stats
        rows.append([
            t.config, t.source, t.description, s["precision"], f"{s['slices_scored']}/{s['num_slices']} ({s['slices_rescored_fp32']})", f"{s['read_s']:.2f}",
            f"{s['find_s']:.2f}", f"**{s['warm_s']:.2f}**" if t.config == "default" else f"{s['warm_s']:.2f}", f"{s['first_s']:.2f}",
            f"{s['num_slices'] / s['warm_s']:.0f}", f"{s['peak_rss_mb']:.0f}", f"{baseline['find_s'] / s['find_s']:.1f}x",
            f"**{baseline['warm_s'] / s['warm_s']:.1f}x**" if t.config == "default" else f"{baseline['warm_s'] / s['warm_s']:.1f}x",
            s["answer"], "yes" if s["answer"] == baseline["answer"] else "**NO**",
        ])
    return table(["configuration", "input", "what", "precision", "slices scored (re-scored fp32)", "read s", "find_l3 s",
                  "s per scan", "first call s", "slices/s", "peak RSS MB", "find_l3 speed-up", "end-to-end speed-up",
                  "L3 answer", "same as baseline"], rows)


def write_report(output: Path, header: list[str], timed: list[Timed], surrogate: list[Timed], surrogate_spec: str,
                 cold: list[dict], throughput: list[dict], acceptance: list[dict]) -> str:
    base_answer = next(t for t in timed if t.config == "baseline").stats["answer"]
    lines = [
        *header, "",
        "## End to end, warm (model loaded; read the file + find L3)", "",
        *timed_table(timed), "",
        "s per scan = read s + find_l3 s (medians of the timed runs); first call = the untimed first run in the "
        "process (includes one-off set-up such as oneDNN kernel creation); slices/s = the scan's slices / s per scan.", "",
        "## Cold (new process: `python -m l3locator find FILE --model M --json`)", "",
        *table(["input", "scoring", "s (median)", "runs s", "peak RSS MB", "L3 answer", "same as baseline"],
               [[c["source"], c["scoring"], f"{c['wall_s']:.2f}", " / ".join(f"{w:.2f}" for w in c["runs"]), "n/a" if c["peak_rss_mb"] is None else f"{c['peak_rss_mb']:.0f}",
                 c["answer"], "yes" if c["answer"] == base_answer else "**NO**"] for c in cold]), "",
    ]
    if surrogate:
        arch, size = surrogate_spec.split(":")
        lines += [f"## Scaling: the same answers at the cost of an untrained {arch} at {size} px (warm)", "",
                  f"Each slice also runs through an untrained {arch} at {size} px (output discarded), so the slices scored "
                  "are the model's but the cost is about the bigger network's: how the speed-up grows with the network. "
                  f"Every configuration here, baseline included, runs in batches of {default_batch_size(int(size), torch.device('cpu'))} "
                  f"slices, what the library picks for a {size} px network.", "",
                  *timed_table(surrogate), ""]
    if throughput:
        lines += ["## Network alone (random inputs, the library's batch size)", "",
                  *table(["arch", "input px", "backend", "batch", "slices/s"], [[r["arch"], r["input"], r["backend"], r["batch"], f"{r['slices_per_s']:.1f}"] for r in throughput]), ""]
    if acceptance:
        matched = sum(r["match"] for r in acceptance)
        lines += [f"## Same answer as exhaustive fp32: {matched}/{len(acceptance)} cases", "",
                  *table(list(acceptance[0]), [list(r.values()) for r in acceptance]), ""]
    text = "\n".join(lines) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(text, encoding="utf-8")
    everything = {"timed": [t.__dict__ for t in timed], "surrogate": [t.__dict__ for t in surrogate], "cold": cold, "throughput": throughput, "acceptance": acceptance}
    output.with_suffix(".json").write_text(json.dumps(everything, indent=1) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model, else an untrained ResNet50)")
    parser.add_argument("--untrained-arch", default="resnet50", choices=("resnet50", "resnet18"), help="architecture of the untrained fallback model")
    parser.add_argument("--untrained-input", type=int, default=224, help="input size of the untrained fallback model (pixels)")
    parser.add_argument("--volume", help="scan to time (default: a 512x512 phantom)")
    parser.add_argument("--slices", type=int, default=500, help="phantom slices (default 500)")
    parser.add_argument("--repeats", type=int, default=3, help="timed warm runs per configuration (median)")
    parser.add_argument("--baseline-repeats", type=int, default=1, help="timed warm runs of the slow baseline")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold runs per input")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile (slow first call)")
    parser.add_argument("--throughput-sizes", type=int, nargs="*", default=[224, 128], help="input sizes for the network-alone table")
    parser.add_argument("--answer-phantoms", type=int, default=24, help="held-out phantoms for the same-answer check (real scans are always checked)")
    parser.add_argument("--no-answers", action="store_true", help="skip the same-answer check on phantoms and real scans")
    parser.add_argument("--answer-phantom-size", type=int, default=256, help="their in-plane size (pixels)")
    parser.add_argument("--output", default=str(BENCH / "results" / "speed"), help="output path without suffix")
    parser.add_argument("--surrogate", default="resnet50:224", help="ARCH:SIZE of the cost surrogate rows, or 'none' (default resnet50:224, the paper's)")
    parser.add_argument("--worker", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    parser.add_argument("--throughput-worker", nargs="+", metavar="ARG", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        config, model_path, scan, repeats, *surrogate = args.worker
        print(json.dumps(run_worker(config, model_path, scan, int(repeats), *surrogate)))
        return 0
    if args.throughput_worker:
        print(json.dumps(run_throughput([int(s) for s in args.throughput_worker])))
        return 0

    command = "python bench/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_before = load_line()
    with tempfile.TemporaryDirectory(prefix="l3speed-") as tmp:
        tmp_path = Path(tmp)
        if args.model:
            model_path, note = args.model, f"`{args.model}`"
        elif DEFAULT_MODEL_PATH.is_file():
            model_path, note = str(DEFAULT_MODEL_PATH), "the shipped default model"
        else:
            torch.manual_seed(0)
            model_path = str(L3Model.new(args.untrained_arch, PreprocessingConfig(input_size=args.untrained_input)).save(tmp_path / "untrained.pt"))
            note = (f"**untrained {args.untrained_arch} at {args.untrained_input} px** (no shipped model yet): timings are right, but its "
                    "probabilities are noise, so the slices refined and the answer comparisons mean nothing; rerun when "
                    "`l3locator/models/default.pt` exists")
        model = load_model(model_path)
        print(f"model: {model.name} ({model.arch}, input {model.preprocessing.input_size})", flush=True)
        volume, volume_line = benchmark_volume(args)
        print(f"volume: {volume_line}", flush=True)
        scans = {"nifti": str(write_nifti(volume, tmp_path / "scan.nii.gz")), "dicom": str(tmp_path / "dicom")}
        write_dicom_series(volume, scans["dicom"])

        timed = []
        for config, source, description in CONFIGS + ((COMPILED,) if args.compile else ()):
            repeats = args.baseline_repeats if config == "baseline" else args.repeats
            _, out, _ = child(worker_command("--worker", config, model_path, scans[source], str(repeats)))
            timed.append(Timed(config, source, description, json.loads(out.strip().splitlines()[-1])))
            print(f"{config:13s} {source:6s} {json.dumps(timed[-1].stats)}", flush=True)

        surrogate = []
        if args.surrogate != "none":
            for config, source, description in SURROGATE_CONFIGS:
                repeats = args.baseline_repeats if config == "baseline" else args.repeats
                _, out, _ = child(worker_command("--worker", config, model_path, scans[source], str(repeats), args.surrogate))
                surrogate.append(Timed(config, source, description, json.loads(out.strip().splitlines()[-1])))
                print(f"surrogate {config:13s} {json.dumps(surrogate[-1].stats)}", flush=True)

        cold = []
        for source, extra in (("nifti", []), ("dicom", []), ("nifti", ["--exhaustive"])):
            runs, rss, answer = [], None, ""
            for _ in range(1 if extra else args.cold_runs):
                wall, rss, out = cold_run([sys.executable, "-m", "l3locator", "find", scans[source], "--model", model_path, "--json", *extra])
                runs.append(wall)
                printed = json.loads(out)
                answer = "none" if not printed["l3_found"] else f"{printed['l3_slice_index']} ({printed['l3_slice_range'][0]}-{printed['l3_slice_range'][1]})"
            cold.append({"source": source, "scoring": "exhaustive fp32" if extra else "default", "wall_s": statistics.median(runs),
                         "runs": runs, "peak_rss_mb": rss, "answer": answer})
            print(f"cold {source} {extra}: {runs}", flush=True)

        throughput = []
        if args.throughput_sizes:
            _, out, _ = child(worker_command("--throughput-worker", *map(str, args.throughput_sizes)))
            throughput = json.loads(out.strip().splitlines()[-1])

    acceptance = [] if args.no_answers else acceptance_rows(model, args.answer_phantoms, args.answer_phantom_size)
    header = [
        "# Speed benchmark", "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), precision `auto` here: {resolve_precision('auto', torch.device('cpu'))}  ",
        f"Load average (1, 5, 15 min) before: {load_before}; after: {load_line()} (the machine may be shared: timings are noisy)  ",
        f"Model: {note}: {model.arch}, input {model.preprocessing.input_size} px, channels {model.preprocessing.channel_mode}  ",
        f"Volume: {volume_line}",
    ]
    print(write_report(Path(args.output), header, timed, surrogate, args.surrogate, cold, throughput, acceptance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
