"""The ``l3locator`` command: a thin shell over the library.

    l3locator find PATH [--model FILE] [--json] [--output-dir DIR] [--device D] [--exhaustive]
                        [--body-composition [--height-m H] [--bc-half-width-mm N]]
    l3locator batch PATH... --output results.csv [--model FILE] [--output-dir DIR] [--device D] [--exhaustive]
                        [--body-composition [--height-m H] [--bc-half-width-mm N]]
    l3locator train DATA_DIR ...      (see ``l3locator train --help``)
    l3locator evaluate DATA_DIR ...
    l3locator phantoms OUTPUT_DIR [--count N] ...   (synthetic CT with vertebra labels)

``find`` and ``batch`` run :mod:`l3locator.runner`, the same runner as ``L3LocatorBatch.py``:
``batch`` takes files, DICOM folders and folders of scans (label files are skipped with a note),
and names each scan's outputs uniquely (``patA/ct.nii.gz`` and ``patB/ct.nii.gz`` give
``patA/ct_L3.json`` and ``patB/ct_L3.json``; see :mod:`l3locator.runner`).

``--body-composition`` also measures skeletal muscle, IMAT, VAT and SAT on the L3 slice
(:mod:`l3locator.body_composition`, a threshold method to review): a ``body_composition`` object
in the JSON (null when no L3 is found), columns in the batch CSV, and with ``--output-dir`` the
tissue label map of the slice and a picture of it.

Exit codes: 0 done (a scan without L3 is a result, not an error: see its flags); 1 some scans
of a batch failed (each has its CSV row with the reason; the CSV is written anyway); 2 bad
input, arguments, model, device or output location, with one line on stderr naming the file
and the reason (``batch`` checks its arguments before reading any scan); 130 interrupted.

Modules that import torch are imported inside the handlers, so ``l3locator --help`` is quick.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, NoReturn

from .errors import InputError, L3LocatorError

if TYPE_CHECKING:
    from .pipeline import L3Result
    from .runner import BodyCompositionOptions

EXHAUSTIVE_HELP = "score every slice in float32 (slower reference; default: only the slices that decide the answer)"
DEVICE_HELP = "cpu or cuda (default: cuda when present)"
EXIT_INTERRUPTED = 130


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


def body_composition_line(measured: dict) -> str:
    """One line for a body composition (:meth:`BodyComposition.to_dict`): areas, muscle HU, SMI, warnings."""
    areas, muscle_hu, smi = measured["areas_cm2"], measured["mean_hu"]["muscle"], measured["smi_cm2_per_m2"]
    hu = f" (mean {muscle_hu:.0f} HU)" if muscle_hu is not None else ""
    index = f", SMI {smi:.1f} cm2/m2" if smi is not None else ""
    notes = "".join(f"; warning: {warning}" for warning in measured["warnings"])
    return (f"body composition at slice {measured['slice_index']}: muscle {areas['muscle']:.1f} cm2{hu}, IMAT {areas['imat']:.1f}, "
            f"VAT {areas['vat']:.1f}, SAT {areas['sat']:.1f} cm2{index}{notes}")


def print_result(result: L3Result, outputs: dict[str, str], as_json: bool) -> None:
    """Print one result: strict JSON with its ``outputs``, or a summary line, its warnings and outputs."""
    from .flags import explain
    from .outputs import to_json

    if as_json:
        print(to_json({**result.to_dict(), "outputs": outputs}))
        return
    print(summary_line(result))
    for meaning in explain(result.flags):
        print(f"  {meaning}")
    measured = result.extra.get("body_composition")
    if measured:
        print(f"  {body_composition_line(measured)}")
    for warning in result.warnings:
        print(f"  warning: {warning}")
    for kind, path in outputs.items():
        print(f"  {kind}: {path}")


def log_line(line: str) -> None:
    """A line for people on stderr (progress, notes), prefixed with the command's name."""
    print(f"l3locator: {line}" if "\n" not in line else line, file=sys.stderr)


def body_composition_request(args: argparse.Namespace) -> BodyCompositionOptions | None:
    """The checked body-composition options of ``find`` or ``batch``, or None without ``--body-composition``.

    Raises:
        InputError: a bad ``--height-m`` or ``--bc-half-width-mm``, or either without ``--body-composition``.
    """
    from .runner import body_composition_options

    if not args.body_composition:
        given = [option for option, value in (("--height-m", args.height_m), ("--bc-half-width-mm", args.bc_half_width_mm)) if value is not None]
        if given:
            raise InputError(f"{' and '.join(given)} {'apply' if len(given) > 1 else 'applies'} only to --body-composition; add it")
        return None
    return body_composition_options(args.height_m, args.bc_half_width_mm if args.bc_half_width_mm is not None else 0.0)


def run_find(args: argparse.Namespace) -> int:
    from .outputs import check_output_folder
    from .runner import EXIT_OK, BackgroundRead, find_in_scan, prepare_run

    body_composition = body_composition_request(args)
    if args.output_dir is not None:
        check_output_folder(args.output_dir)  # the check that needs no torch, before the scan is touched
    scan = BackgroundRead(args.path)  # read while torch and the model load (prepare_run)
    settings = prepare_run(args.model, args.device, args.output_dir, exhaustive=args.exhaustive, body_composition=body_composition)
    result, outputs = find_in_scan(scan, settings)
    print_result(result, outputs, args.json)
    return EXIT_OK


def run_batch(args: argparse.Namespace) -> int:
    from .runner import run_batch_command

    body_composition = body_composition_request(args)
    return run_batch_command(args.paths, args.output, log_line, model=args.model, device=args.device,
                             output_dir=args.output_dir, exhaustive=args.exhaustive, body_composition=body_composition)


def add_body_composition_options(parser: argparse.ArgumentParser) -> None:
    """``--body-composition``, ``--height-m`` and ``--bc-half-width-mm`` (values checked by
    :func:`body_composition_request`, so that a bad one is one line and exit status 2)."""
    parser.add_argument("--body-composition", action="store_true",
                        help="also measure skeletal muscle, IMAT, VAT and SAT on the L3 slice (a threshold method: review it)")
    parser.add_argument("--height-m", metavar="H", help="patient height in metres, for the SMI (default: the DICOM Patient's Size)")
    parser.add_argument("--bc-half-width-mm", metavar="N",
                        help="measure the mean over the slices within +-N mm of the L3 slice (default 0: the L3 slice alone)")


def run_phantoms(args: argparse.Namespace) -> int:
    try:
        from .phantoms import EXTENTS, generate_phantom, write_phantom_case
    except ImportError as exc:  # the Slicer extension installs the library without the generator
        raise InputError("the phantom generator is not part of this installation (install the l3locator package from its repository)") from exc
    from .runner import EXIT_OK

    if args.extent not in EXTENTS:
        raise InputError(f"--extent must be one of {', '.join(EXTENTS)}, not {args.extent!r}")
    if not 0.0 <= args.deal_shapes <= 1.0 or (args.deal_shapes and not args.vertebra_template):
        raise InputError("--deal-shapes takes a share in [0, 1] and needs --vertebra-template")
    templates = []
    for mask in args.vertebra_template:
        from .phantoms.vertebra_templates import VertebraTemplates

        try:
            templates.append(VertebraTemplates.from_mask(mask))
        except (OSError, ValueError) as exc:
            raise InputError(f"--vertebra-template {mask}: {exc}") from exc
    for n in range(args.count):
        seed = args.first_seed + n
        phantom = generate_phantom(seed, shape_ij=(args.size, args.size), slice_thickness_mm=args.thickness, extent=args.extent,
                                   vertebra_templates=templates or None, deal_shapes_rate=args.deal_shapes)
        if args.spine_crop:
            from .phantoms.crops import crop_around_spine, crop_generator

            try:
                phantom = crop_around_spine(phantom, crop_generator(seed))
            except ValueError as exc:
                raise InputError(f"--spine-crop, seed {seed}: {exc}") from exc
        paths = write_phantom_case(phantom, args.output_dir, f"phantom{seed:06d}")
        where = f"L3 slices {phantom.l3_range[0]}-{phantom.l3_range[1]}" if phantom.l3_range else "no L3"
        print(f"[{n + 1}/{args.count}] {paths['ct']}: {phantom.volume.num_slices} slices, {where}", file=sys.stderr)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    from .training.cli import add_subcommands as add_training_subcommands

    parser = argparse.ArgumentParser(prog="l3locator", description="Find the L3 vertebra slice in CT scans.")
    commands = parser.add_subparsers(dest="command", required=True)

    find = commands.add_parser("find", help="find L3 in one scan (DICOM folder, NIfTI or NRRD)")
    find.add_argument("path", help="DICOM folder, .nii/.nii.gz, or .nrrd/.nhdr file")
    find.add_argument("--model", help="model file (default: the shipped model)")
    find.add_argument("--json", action="store_true", help="print one JSON object")
    find.add_argument("--output-dir", help="also write result JSON, L3 markups (.mrk.json) and a QC picture here "
                      "(with --body-composition: the tissue label map and its picture too)")
    find.add_argument("--device", help=DEVICE_HELP)
    find.add_argument("--exhaustive", action="store_true", help=EXHAUSTIVE_HELP)
    add_body_composition_options(find)
    find.set_defaults(run=run_find)

    batch = commands.add_parser(
        "batch", help="find L3 in many scans; one CSV row per scan",
        description="Find L3 in many scans; one CSV row per scan. Exit status: 0 all scans done, "
        "1 some scans failed (their rows say why), 2 bad arguments, model, device or output location (nothing run).",
    )
    batch.add_argument("paths", nargs="+", metavar="PATH", help="scan files, DICOM folders, or folders of scans")
    batch.add_argument("--output", required=True, help="CSV file to write")
    batch.add_argument("--model", help="model file (default: the shipped model)")
    batch.add_argument("--output-dir", help="also write per-scan results, markups and QC pictures here (sub-folders as the scans')")
    batch.add_argument("--device", help=DEVICE_HELP)
    batch.add_argument("--exhaustive", action="store_true", help=EXHAUSTIVE_HELP)
    add_body_composition_options(batch)
    batch.set_defaults(run=run_batch)

    phantoms = commands.add_parser("phantoms", help="write synthetic CT phantoms with vertebra labels (a training or demo set)")
    phantoms.add_argument("output_dir", metavar="OUTPUT_DIR")
    phantoms.add_argument("--count", type=int, default=20, help="number of phantoms (default 20)")
    phantoms.add_argument("--first-seed", type=int, default=0, help="seed of the first phantom; the others follow (default 0)")
    phantoms.add_argument("--size", type=int, default=256, help="in-plane size in pixels (default 256)")
    phantoms.add_argument("--extent", default="random", help="body region: abdomen, chest, whole_body, l3_edge or random (default)")
    phantoms.add_argument("--thickness", type=float, help="slice thickness in mm (default drawn per phantom)")
    phantoms.add_argument("--vertebra-template", metavar="MASK", action="append", default=[],
                          help="NIfTI vertebra label map (VerSe ids, e.g. a VerSe mask T9-L5): paint the levels it holds "
                          "with their real shapes instead of the analytic ones; repeat for several patients (each phantom "
                          "draws each level's shape from the masks that hold it whole)")
    phantoms.add_argument("--deal-shapes", type=float, default=0.0, metavar="SHARE",
                          help="share of phantoms whose L2, L3 and L4 take the template's shapes of those levels in a random "
                          "order, so that one patient's L3 shape is not the mark of L3 (default 0; needs --vertebra-template)")
    phantoms.add_argument("--spine-crop", action="store_true",
                          help="write a tight crop around the lumbar spine of each phantom (80-180 mm across, 50-150 mm long, "
                          "extra noise): spine-only fields of view for training; use with an extent that shows the lumbar spine")
    phantoms.set_defaults(run=run_phantoms)

    add_training_subcommands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except (L3LocatorError, OSError) as exc:
        from .runner import EXIT_BAD_INPUT, one_line

        print(f"l3locator: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("l3locator: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def run_and_exit() -> NoReturn:
    """The ``l3locator`` command and ``python -m l3locator``: :func:`main`, then a quick exit.

    Once torch has run, the interpreter's own teardown (finalising torch's modules and thread pools)
    takes 0.7-0.9 s on a 2-core CPU, a sixth of a cold ``find`` (``bench/results/speed.md``). Every
    command has closed its files by the time :func:`main` returns, so the process flushes its
    streams and logging and ends at once, unless a thread other than the main one or a child process
    is still running (then it exits the usual way, which waits for them)."""
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    if _still_working():
        sys.exit(code)
    os._exit(code)


def _still_working() -> bool:
    """Whether a thread other than the main one, or a child process, is still running (their work
    and ``multiprocessing``'s clean-up at exit must not be cut short)."""
    if any(t is not threading.main_thread() and t.is_alive() and not t.daemon for t in threading.enumerate()):
        return True
    processes = sys.modules.get("multiprocessing")
    return processes is not None and bool(processes.active_children())


if __name__ == "__main__":
    run_and_exit()
