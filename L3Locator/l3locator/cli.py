"""The ``l3locator`` command: a thin shell over the library.

    l3locator find PATH [--model FILE] [--json] [--output-dir DIR] [--exhaustive]
    l3locator batch PATH... --output results.csv [--model FILE] [--output-dir DIR] [--exhaustive]
    l3locator train DATA_DIR ...      (see ``l3locator train --help``)
    l3locator evaluate DATA_DIR ...
    l3locator phantoms OUTPUT_DIR [--count N] ...   (synthetic CT with vertebra labels)

Exit codes: 0 done (a scan without L3 is a result, not an error: see its flags); 1 some scans
of a batch failed; 2 bad input, with a one-line message on stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from .errors import L3LocatorError
from .markups import write_markups_point
from .modelfile import L3Model, load_model
from .phantom import EXTENTS, generate_phantom, write_phantom_case
from .pipeline import L3Result, find_l3
from .qc import write_qc_png
from .reading import load_ct
from .training.cli import add_subcommands as add_training_subcommands
from .volume import CTVolume

EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT = 0, 1, 2
EXHAUSTIVE_HELP = "score every slice in float32 (slower reference; default: only the slices that decide the answer)"
CSV_COLUMNS = (
    "input", "status", "l3_found", "l3_slice_index", "l3_slice_first", "l3_slice_last",
    "l3_r_mm", "l3_a_mm", "l3_s_mm", "confidence", "flags", "num_slices", "seconds", "error",
)


def case_name(path: str | os.PathLike) -> str:
    """A file-name-safe case name: the file name without its image extension, or the folder name."""
    name = Path(path).resolve().name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr", ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def summary_line(result: L3Result) -> str:
    """One human-readable line for a result."""
    flags = ", ".join(result.flags) or "none"
    if not result.l3_found:
        return f"{result.input}: no L3 found ({result.num_slices} slices; flags: {flags}) [{result.seconds:.1f} s]"
    ras = ", ".join(f"{v:.1f}" for v in result.l3_position_ras)
    first, last = result.l3_slice_range
    return (
        f"{result.input}: L3 at slice {result.l3_slice_index} (range {first}-{last} of {result.num_slices}), "
        f"RAS ({ras}) mm, confidence {result.confidence:.2f}, flags: {flags} [{result.seconds:.1f} s]"
    )


def write_outputs(output_dir: Path, volume: CTVolume, result: L3Result) -> dict[str, str]:
    """Write the result JSON, the markups file (if L3 was found) and the QC picture."""
    output_dir.mkdir(parents=True, exist_ok=True)
    name = case_name(volume.source)
    written = {}
    result_path = output_dir / f"{name}_L3.json"
    tmp = result_path.with_name(f".{result_path.name}.tmp")
    tmp.write_text(json.dumps(result.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, result_path)
    written["result"] = str(result_path)
    if result.l3_found:
        description = f"L3 slice {result.l3_slice_index}, confidence {result.confidence:.2f}, model {result.model}"
        written["markups"] = str(write_markups_point(output_dir / f"{name}_L3.mrk.json", result.l3_position_ras, description=description))
    written["qc"] = str(write_qc_png(output_dir / f"{name}_L3_qc.png", volume, result))
    return written


def find_and_write(
    source: str, model: L3Model | str | None, device: str | None, output_dir: str | None, exhaustive: bool = False
) -> tuple[L3Result, dict[str, str]]:
    """Read one scan once, find L3, and write the optional outputs; ``seconds`` covers it all.

    ``exhaustive`` scores every slice in float32 instead of the fast path (see :func:`find_l3`).
    """
    started = time.perf_counter()
    volume = load_ct(source)
    result = find_l3(volume, model, device=device, exhaustive=exhaustive)
    outputs = write_outputs(Path(output_dir), volume, result) if output_dir else {}
    result.seconds = time.perf_counter() - started
    return result, outputs


def run_find(args: argparse.Namespace) -> int:
    result, outputs = find_and_write(args.path, args.model, args.device, args.output_dir, args.exhaustive)
    if args.json:
        print(json.dumps({**result.to_dict(), "outputs": outputs}))
    else:
        print(summary_line(result))
        for kind, path in outputs.items():
            print(f"  {kind}: {path}")
    return EXIT_OK


def csv_row(source: str, result: L3Result | None, error: str = "") -> dict[str, object]:
    """One CSV row of a batch: the result's key facts, or the error for a failed scan."""
    if result is None:
        return {"input": source, "status": "error", "error": error}
    r, a, s = result.l3_position_ras or ("", "", "")
    first, last = result.l3_slice_range or ("", "")
    return {
        "input": source, "status": "ok", "l3_found": result.l3_found, "l3_slice_index": result.l3_slice_index,
        "l3_slice_first": first, "l3_slice_last": last, "l3_r_mm": r, "l3_a_mm": a, "l3_s_mm": s,
        "confidence": round(result.confidence, 4), "flags": ";".join(result.flags), "num_slices": result.num_slices,
        "seconds": round(result.seconds, 3), "error": "",
    }


def run_batch(args: argparse.Namespace) -> int:
    model: L3Model = load_model(args.model)
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(f".{output.name}.partial")
    failures = 0
    started = time.perf_counter()
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, restval="")
        writer.writeheader()
        for number, source in enumerate(args.paths, start=1):
            try:
                result, _ = find_and_write(source, model, args.device, args.output_dir, args.exhaustive)
                row = csv_row(source, result)
            except (L3LocatorError, OSError) as exc:
                failures += 1
                row = csv_row(source, None, str(exc))
            writer.writerow(row)
            handle.flush()
            elapsed = time.perf_counter() - started
            eta = elapsed / number * (len(args.paths) - number)
            print(f"[{number}/{len(args.paths)}] {row['status']:5s} {source}  (ETA {eta:.0f} s)", file=sys.stderr)
    os.replace(partial, output)
    print(f"{len(args.paths) - failures} of {len(args.paths)} scans done, {failures} failed; results in {output}", file=sys.stderr)
    return EXIT_SOME_FAILED if failures else EXIT_OK


def run_phantoms(args: argparse.Namespace) -> int:
    for n in range(args.count):
        seed = args.first_seed + n
        phantom = generate_phantom(seed, shape_ij=(args.size, args.size), slice_thickness_mm=args.thickness, extent=args.extent)
        paths = write_phantom_case(phantom, args.output_dir, f"phantom{seed:06d}")
        where = f"L3 slices {phantom.l3_range[0]}-{phantom.l3_range[1]}" if phantom.l3_range else "no L3"
        print(f"[{n + 1}/{args.count}] {paths['ct']}: {phantom.volume.num_slices} slices, {where}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="l3locator", description="Find the L3 vertebra slice in CT scans.")
    commands = parser.add_subparsers(dest="command", required=True)

    find = commands.add_parser("find", help="find L3 in one scan (DICOM folder, NIfTI or NRRD)")
    find.add_argument("path", help="DICOM folder, .nii/.nii.gz, or .nrrd/.nhdr file")
    find.add_argument("--model", help="model file (default: the shipped model)")
    find.add_argument("--json", action="store_true", help="print one JSON object")
    find.add_argument("--output-dir", help="also write result JSON, L3 markups (.mrk.json) and a QC picture here")
    find.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    find.add_argument("--exhaustive", action="store_true", help=EXHAUSTIVE_HELP)
    find.set_defaults(run=run_find)

    batch = commands.add_parser("batch", help="find L3 in many scans; one CSV row per scan")
    batch.add_argument("paths", nargs="+", metavar="PATH")
    batch.add_argument("--output", required=True, help="CSV file to write")
    batch.add_argument("--model", help="model file (default: the shipped model)")
    batch.add_argument("--output-dir", help="also write per-scan results, markups and QC pictures here")
    batch.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    batch.add_argument("--exhaustive", action="store_true", help=EXHAUSTIVE_HELP)
    batch.set_defaults(run=run_batch)

    phantoms = commands.add_parser("phantoms", help="write synthetic CT phantoms with vertebra labels (a training or demo set)")
    phantoms.add_argument("output_dir", metavar="OUTPUT_DIR")
    phantoms.add_argument("--count", type=int, default=20, help="number of phantoms (default 20)")
    phantoms.add_argument("--first-seed", type=int, default=0, help="seed of the first phantom; the others follow (default 0)")
    phantoms.add_argument("--size", type=int, default=256, help="in-plane size in pixels (default 256)")
    phantoms.add_argument("--extent", choices=EXTENTS, default="random", help="body region (default random)")
    phantoms.add_argument("--thickness", type=float, help="slice thickness in mm (default drawn per phantom)")
    phantoms.set_defaults(run=run_phantoms)

    add_training_subcommands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except L3LocatorError as exc:
        print(f"l3locator: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("l3locator: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
