"""Speed benchmark: find L3 on real CT first, then on phantoms: cold CLI, warm find_l3, exhaustive fp32.

    python bench/speed.py [--model FILE] [--quick] [--repeats 3] [--cold-runs 3] [--phantoms 4]
                          [--big-slices 2000] [--output bench/results/speed]

Model: ``--model``, else the shipped default model (``l3locator/models/default.pt``).

Scans, in this order (each written to a temporary folder and read from there; native real
scans are read where they are):

1. **Real CT**: every scan in ``../shared/data/real`` (``manifest.json``), resampled to 500
   slices along the axial axis (linear interpolation of HU, same extent, same in-plane size:
   how the issue's 512 x 512 x 500 benchmark volume is built), then each at its native spacing.
2. **Phantoms**: a whole-body phantom drawn at 512 x 512 with 1 mm slices cut to 500 slices
   around L3, and ``--phantoms`` held-out phantoms of the accuracy benchmark.
3. **Memory**: the first real scan resampled to ``--big-slices`` slices (512 x 512 x 2000 by
   default), cold CLI only (fast path and ``--exhaustive``), for peak RSS.

Per scan:

* **cold CLI**: ``python -m l3locator find SCAN --model M --json`` in a new process: wall time
  (median of ``--cold-runs``) and its peak RSS (the child's own ``ru_maxrss``, read by a small
  wrapper process that runs nothing else).
* **warm find_l3**: in one worker process per scan (the model loaded, the volume read), one
  untimed call, then the median of ``--repeats`` timed ``find_l3(volume, model)`` calls: scoring
  and locating, without reading (read s is its own column).
* **exhaustive fp32**: ``find_l3(volume, model, exhaustive=True)`` in the same worker (eager
  float32, every slice: the reference), timed once after the fast path.
* slices scored / re-scored in float32, the fast path's strategy, and **same answer**: the L3
  slice, range and flags of the fast path equal the exhaustive ones.

Cold breakdown (real scans resampled to 500 slices, the phantom): a new process that runs the
CLI's steps with a clock between them: interpreter start, the scan's reading started in the
background (``BackgroundRead``, as ``find`` does), imports (``l3locator.pipeline`` with torch),
model load, the wait for the reading (and its check), score (``find_l3``'s scoring) and locate
(with the checks ``find_l3`` runs after scoring), against the CLI's wall time.

``--quick``: one real scan (resampled to 500 slices) and one phantom, one repeat, one cold run,
the big scan at 600 slices: checks that the script runs; its numbers are not the benchmark.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from l3locator.engine import resolve_precision
from l3locator.modelfile import DEFAULT_MODEL_PATH, load_model
from l3locator.phantoms import generate_phantom
from l3locator.phantoms.writing import write_nifti
from l3locator.pipeline import L3Result, find_l3
from l3locator.reading import load_ct
from l3locator.volume import CTVolume

BENCH = Path(__file__).resolve().parent
SHARED_DATA = BENCH.parents[1] / "shared" / "data"
PHANTOM_SEED = 20240500
#: Slices of the resampled real scans and of the phantom cut (the issue's 512 x 512 x 500).
BENCH_SLICES = 500

#: Runs in a new process: the CLI's steps (``l3locator find``: imports, model load, read and check,
#: then ``find_l3`` on the volume, its scoring clocked apart from the rest: locating and the checks
#: after it) with a wall clock (``time.time()``) after each, printed as JSON.
COLD_STEPS = """
import json, sys, time
stamps = {"start": time.time()}
from l3locator.runner import BackgroundRead
scan = BackgroundRead(sys.argv[1])
stamps["read started"] = time.time()
import l3locator.pipeline as pipeline
from l3locator.modelfile import load_model
from l3locator.reading import check_volume
stamps["import"] = time.time()
model = load_model(sys.argv[2])
stamps["model load"] = time.time()
volume = scan.volume()
check_volume(volume)
stamps["read (wait)"] = time.time()
score = pipeline.score_coarse_to_fine
def timed_score(*args, **kwargs):
    curve = score(*args, **kwargs)
    stamps["score"] = time.time()
    return curve
pipeline.score_coarse_to_fine = timed_score
pipeline.find_l3(volume, model)
stamps["locate and checks"] = time.time()
print(json.dumps(stamps))
"""

#: Runs a command given as JSON in argv[1] and prints its wall time, its own peak RSS (MB) and output.
RSS_WRAPPER = """
import json, resource, subprocess, sys, time
started = time.perf_counter()
proc = subprocess.run(json.loads(sys.argv[1]), capture_output=True, text=True)
wall = time.perf_counter() - started
rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"wall_s": wall, "peak_rss_mb": rss_mb, "rc": proc.returncode, "stdout": proc.stdout, "stderr": proc.stderr[-2000:]}))
"""


# ---------------------------------------------------------------------------------------------
# Scans
# ---------------------------------------------------------------------------------------------
def resample_slices(volume: CTVolume, num_slices: int, chunk: int = 32) -> CTVolume:
    """``volume`` with ``num_slices`` axial slices spanning the same extent: HU linearly
    interpolated between neighbouring slices (int16), in-plane unchanged, the axial direction
    of ``ijk_to_ras`` scaled to the new spacing."""
    axis = 2 - volume.axial_axis  # array axis of the axial voxel axis
    stack = np.moveaxis(volume.voxels, axis, 0)
    n = stack.shape[0]
    position = np.linspace(0.0, n - 1.0, num_slices)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, n - 1)
    weight = (position - below)[:, None, None]
    out = np.empty((num_slices, *stack.shape[1:]), dtype=np.int16)
    for start in range(0, num_slices, chunk):
        part = slice(start, start + chunk)
        out[part] = np.rint(stack[below[part]] * (1.0 - weight[part]) + stack[above[part]] * weight[part])
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, volume.axial_axis] *= (n - 1) / (num_slices - 1)
    return CTVolume(np.ascontiguousarray(np.moveaxis(out, 0, axis)), matrix, source=f"{volume.source} resampled to {num_slices} slices")


def real_scan_files() -> list[tuple[str, Path]]:
    """(name, path) of every CT in ``../shared/data`` (``manifest.json``); empty when absent."""
    manifest = SHARED_DATA / "manifest.json"
    if not manifest.is_file():
        print(f"note: {manifest} not found; real scans skipped", file=sys.stderr)
        return []
    return [(entry["file"], SHARED_DATA / entry["file"]) for entry in json.loads(manifest.read_text()) if entry.get("file")]


def phantom_500() -> tuple[CTVolume, str]:
    """The whole-body phantom at 512 x 512, 1 mm, cut to 500 slices around L3, and its truth."""
    phantom = generate_phantom(PHANTOM_SEED, shape_ij=(512, 512), slice_thickness_mm=1.0, extent="whole_body")
    volume, n = phantom.volume, BENCH_SLICES
    l3 = phantom.l3_range or (volume.num_slices // 2, volume.num_slices // 2)
    start = int(np.clip((l3[0] + l3[1]) // 2 - int(0.4 * n), 0, max(0, volume.num_slices - n)))
    matrix = volume.ijk_to_ras.copy()
    matrix[:3, 3] += start * matrix[:3, 2]
    return CTVolume(np.ascontiguousarray(volume.voxels[start : start + n]), matrix, source=f"phantom:{PHANTOM_SEED}"), f"phantom {PHANTOM_SEED} whole body 1 mm, 500 slices"


def benchmark_scans(args: argparse.Namespace, folder: Path) -> list[dict]:
    """The scans to time, in report order: ``{"name", "kind", "path", "breakdown"}``."""
    scans = []
    real = real_scan_files()[: 1 if args.quick else None]
    for name, path in real:
        resampled = write_nifti(resample_slices(load_ct(path), BENCH_SLICES), folder / f"{Path(name).name.split('.')[0]}_{BENCH_SLICES}.nii.gz")
        scans.append({"name": f"{name} @ {BENCH_SLICES} slices", "kind": "real, resampled", "path": str(resampled), "breakdown": True})
    if not args.quick:
        scans += [{"name": name, "kind": "real, native", "path": str(path), "breakdown": False} for name, path in real]
    if args.quick:
        sys.path.insert(0, str(BENCH))
        from accuracy import phantom_cases

        case = phantom_cases(1, 256)[0]
        scans.append({"name": case.name, "kind": "phantom", "path": str(write_nifti(case.volume, folder / "phantom.nii.gz")), "breakdown": True})
    else:
        volume, label = phantom_500()
        scans.append({"name": label, "kind": "phantom", "path": str(write_nifti(volume, folder / "phantom_500.nii.gz")), "breakdown": True})
        if args.phantoms:
            sys.path.insert(0, str(BENCH))
            from accuracy import phantom_cases

            for case in phantom_cases(args.phantoms, 256):
                scans.append({"name": case.name, "kind": "phantom", "path": str(write_nifti(case.volume, folder / f"{case.name}.nii.gz")), "breakdown": False})
    return scans


def big_scan(args: argparse.Namespace, folder: Path) -> dict | None:
    """The first real scan resampled to ``--big-slices`` slices (uncompressed NIfTI), or None."""
    real = real_scan_files()
    if not args.big_slices or not real:
        return None
    name, path = real[0]
    volume = resample_slices(load_ct(path), args.big_slices)
    written = write_nifti(volume, folder / f"big_{args.big_slices}.nii")
    shape = " x ".join(str(s) for s in volume.voxels.shape[::-1])
    return {"name": f"{name} @ {args.big_slices} slices ({shape})", "path": str(written)}


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------
def answer_of(result: L3Result) -> dict:
    """What must match between the fast path and exhaustive scoring: slice, range and flags."""
    return {"slice": result.l3_slice_index, "range": list(result.l3_slice_range) if result.l3_slice_range else None, "flags": list(result.flags)}


def answer_text(answer: dict) -> str:
    if answer["slice"] is None:
        return "none"
    return f"{answer['slice']} ({answer['range'][0]}-{answer['range'][1]})" + (f" [{', '.join(answer['flags'])}]" if answer["flags"] else "")


def run_worker(model_path: str, scan: str, repeats: int) -> dict:
    """Warm timings of one scan in this process: read, fast path (median of ``repeats`` after one
    untimed call), exhaustive float32 (once)."""
    model = load_model(model_path)
    started = time.perf_counter()
    volume = load_ct(scan)
    read_s = time.perf_counter() - started
    find_l3(volume, model)  # one-off set-up (oneDNN kernels) is not what a warm call costs
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fast = find_l3(volume, model)
        runs.append(time.perf_counter() - started)
    started = time.perf_counter()
    reference = find_l3(volume, model, exhaustive=True)
    exhaustive_s = time.perf_counter() - started
    scoring = fast.extra["scoring"]
    return {"num_slices": volume.num_slices, "thickness_mm": volume.slice_thickness, "read_s": read_s, "find_s": statistics.median(runs),
            "find_runs_s": runs, "exhaustive_s": exhaustive_s, "strategy": scoring["strategy"], "precision": scoring["precision"],
            "slices_scored": scoring["slices_scored"], "slices_rescored_fp32": scoring["slices_rescored_fp32"],
            "answer": answer_of(fast), "exhaustive_answer": answer_of(reference), "same_answer": answer_of(fast) == answer_of(reference)}


def measured_child(command: list[str]) -> dict:
    """Run ``command`` in a new process under :data:`RSS_WRAPPER`: wall s, peak RSS MB, stdout."""
    proc = subprocess.run([sys.executable, "-c", RSS_WRAPPER, json.dumps(command)], capture_output=True, text=True, check=True)
    measured = json.loads(proc.stdout)
    if measured["rc"] != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({measured['rc']}): {measured['stderr'].strip()}")
    return measured


def cold_cli(model_path: str, scan: str, runs: int, *extra: str) -> dict:
    """``l3locator find`` in new processes: median wall s, the runs, peak RSS MB, answer."""
    measured = [measured_child([sys.executable, "-m", "l3locator", "find", scan, "--model", model_path, "--json", *extra]) for _ in range(runs)]
    printed = json.loads(measured[-1]["stdout"])
    answer = {"slice": printed["l3_slice_index"], "range": printed["l3_slice_range"], "flags": printed["flags"]}
    return {"wall_s": statistics.median(m["wall_s"] for m in measured), "runs_s": [m["wall_s"] for m in measured],
            "peak_rss_mb": max(m["peak_rss_mb"] for m in measured), "answer": answer, "scoring": printed.get("scoring", {})}


def cold_breakdown(model_path: str, scan: str) -> dict:
    """Seconds of each step of a cold run (:data:`COLD_STEPS`), the interpreter's start included."""
    spawned = time.time()
    proc = subprocess.run([sys.executable, "-c", COLD_STEPS, scan, model_path], capture_output=True, text=True, check=True)
    stamps = json.loads(proc.stdout.strip().splitlines()[-1])
    names = list(stamps)
    steps = {"interpreter start": stamps["start"] - spawned}
    steps.update({name: stamps[name] - stamps[before] for before, name in zip(names[:-1], names[1:])})
    steps["total"] = stamps[names[-1]] - spawned
    return steps


def worker_command(*extra: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *extra]


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------
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


def scan_rows(rows: list[dict]) -> list[str]:
    return table(
        ["scan", "kind", "slices", "mm", "cold CLI s", "peak RSS MB (cold)", "read s", "warm find_l3 s", "exhaustive fp32 s", "speed-up",
         "scored / re-scored fp32", "strategy", "answer", "same as exhaustive"],
        [[r["name"], r["kind"], r["warm"]["num_slices"], f"{r['warm']['thickness_mm']:.2f}", f"{r['cold']['wall_s']:.2f}", f"{r['cold']['peak_rss_mb']:.0f}",
          f"{r['warm']['read_s']:.2f}", f"**{r['warm']['find_s']:.2f}**", f"{r['warm']['exhaustive_s']:.2f}",
          f"{r['warm']['exhaustive_s'] / r['warm']['find_s']:.1f}x", f"{r['warm']['slices_scored']} / {r['warm']['slices_rescored_fp32']}",
          r["warm"]["strategy"], answer_text(r["warm"]["answer"]),
          "yes" if r["warm"]["same_answer"] and r["cold"]["answer"] == r["warm"]["exhaustive_answer"] else "**NO**"] for r in rows])


def write_report(output: Path, header: list[str], rows: list[dict], breakdowns: list[dict], big: list[dict]) -> str:
    steps = list(breakdowns[0]["steps"]) if breakdowns else []
    lines = [
        *header, "",
        "## Real CT, then phantoms", "",
        *scan_rows(rows), "",
        "cold CLI s: `python -m l3locator find SCAN --model M --json` in a new process (median); peak RSS: that process's. "
        "warm find_l3 s: `find_l3(volume, model)` with the model loaded and the scan read (median, after one untimed call). "
        "exhaustive fp32 s: `find_l3(..., exhaustive=True)`, every slice in eager float32, once. speed-up = exhaustive / warm. "
        "same as exhaustive: the L3 slice, range and flags of the fast path (warm and cold) equal the exhaustive ones.", "",
    ]
    if breakdowns:
        lines += ["## Cold start, step by step (s)", "",
                  *table(["scan", *steps, "CLI wall s"], [[b["name"], *(f"{b['steps'][s]:.2f}" for s in steps), f"{b['cli_s']:.2f}"] for b in breakdowns]), "",
                  "A new process running the CLI's steps with a clock between them: interpreter start; the scan's reading started in a background thread "
                  "(as `find` does); imports (`l3locator.pipeline` and torch) and model load, while the scan is read; the wait for the reading "
                  "and its check; score (the fast path); locate and the checks after it (anatomy, level count). "
                  "CLI wall s: the `find` command's own wall time beside it.", ""]
    if big:
        lines += ["## Memory: a large scan (cold CLI)", "",
                  *table(["scan", "scoring", "wall s", "peak RSS MB", "scored / re-scored fp32", "answer"],
                         [[b["name"], b["scoring"], f"{b['cold']['wall_s']:.2f}", f"{b['cold']['peak_rss_mb']:.0f}",
                           f"{b['cold']['scoring'].get('slices_scored', '')} / {b['cold']['scoring'].get('slices_rescored_fp32', '')}",
                           answer_text(b["cold"]["answer"])] for b in big]), ""]
    text = "\n".join(lines) + "\n"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.with_suffix(".md").write_text(text, encoding="utf-8")
    output.with_suffix(".json").write_text(json.dumps({"header": header, "scans": rows, "cold_breakdown": breakdowns, "big": big}, indent=1) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--quick", action="store_true", help="one real scan and one phantom, one run each: checks the script, not the numbers")
    parser.add_argument("--repeats", type=int, default=3, help="timed warm find_l3 calls per scan (median)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold CLI runs per scan (median)")
    parser.add_argument("--phantoms", type=int, default=4, help="held-out accuracy phantoms after the 500-slice phantom")
    parser.add_argument("--big-slices", type=int, default=2000, help="slices of the large scan for peak RSS (0: skip)")
    parser.add_argument("--output", default=str(BENCH / "results" / "speed"), help="output path without suffix (.md and .json)")
    parser.add_argument("--worker", nargs=3, metavar=("MODEL", "SCAN", "REPEATS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.worker:
        model_path, scan, repeats = args.worker
        print(json.dumps(run_worker(model_path, scan, int(repeats))))
        return 0
    if args.quick:
        args.repeats, args.cold_runs, args.phantoms, args.big_slices = 1, 1, 0, min(args.big_slices, 600)

    model_path = args.model or str(DEFAULT_MODEL_PATH)
    model = load_model(model_path)
    command = "python bench/speed.py " + " ".join(argv if argv is not None else sys.argv[1:])
    load_before = load_line()
    rows, breakdowns, big = [], [], []
    with tempfile.TemporaryDirectory(prefix="l3speed-") as tmp:
        folder = Path(tmp)
        for scan in benchmark_scans(args, folder):
            out = subprocess.run(worker_command("--worker", model_path, scan["path"], str(args.repeats)), capture_output=True, text=True, check=True).stdout
            row = {"name": scan["name"], "kind": scan["kind"], "warm": json.loads(out.strip().splitlines()[-1]), "cold": cold_cli(model_path, scan["path"], args.cold_runs)}
            rows.append(row)
            print(f"{scan['name']}: {json.dumps(row)}", flush=True)
            if scan["breakdown"]:
                breakdowns.append({"name": scan["name"], "steps": cold_breakdown(model_path, scan["path"]), "cli_s": row["cold"]["wall_s"]})
                print(f"  cold breakdown: {json.dumps(breakdowns[-1])}", flush=True)
        large = big_scan(args, folder)
        if large:
            for scoring, extra in (("fast path", ()), ("exhaustive fp32", ("--exhaustive",))):
                big.append({"name": large["name"], "scoring": scoring, "cold": cold_cli(model_path, large["path"], 1, *extra)})
                print(f"big {scoring}: {json.dumps(big[-1])}", flush=True)
    header = [
        "# Speed benchmark", "",
        f"Command: `{command}`  ",
        f"Date: {time.strftime('%Y-%m-%d %H:%M')}; machine: {cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), precision `auto` here: {resolve_precision('auto', torch.device('cpu'))}; "
        f"GPU: {torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'none (CPU only)'}  ",
        f"Load average (1, 5, 15 min) before: {load_before}; after: {load_line()} (timings on a shared machine are noisy)  ",
        f"Model: `{model_path}`: {model.arch}, input {model.preprocessing.input_size} px, channels {model.preprocessing.channel_mode}",
    ]
    print(write_report(Path(args.output), header, rows, breakdowns, big))
    return 0


if __name__ == "__main__":
    sys.exit(main())
