"""Find L3 in many CT scans without the GUI: one CSV row per scan, one markups file per L3 found.

Inside 3D Slicer, or under plain Python (no Slicer needed), with the same result::

    Slicer --no-main-window --python-script L3LocatorBatch.py \\
        --input SCAN [SCAN ...] --output results.csv [--model FILE] [--markups-dir DIR] [--device cpu|cuda]
    python L3LocatorBatch.py --input SCAN [SCAN ...] --output results.csv [...]

A SCAN is a NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .nhdr) file, a DICOM folder (a folder with
DICOM files in it), or a folder of such scans (each entry one scan; label files are skipped).
This is ``l3locator batch`` with the L3Locator module's option names: the same runner
(:mod:`l3locator.runner`), the core library's readers, the same CSV columns. Each L3 found is
saved as ``<scan>_L3.mrk.json`` in ``--markups-dir`` (default: the CSV's folder; scans in
different folders get their folders mirrored there), a 3D Slicer markups file in RAS millimetres.
Failed scans get a row with their error and the batch goes on. Exit status: 0 all scans done;
1 some failed; 2 bad arguments, model, device or output location (checked before any scan is read).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

SCRIPT_DIRECTORY = Path(globals().get("__file__") or sys.argv[0]).resolve().parent
if str(SCRIPT_DIRECTORY) not in sys.path:  # plain Python: find l3locator beside this script
    sys.path.insert(0, str(SCRIPT_DIRECTORY))

from l3locator.errors import L3LocatorError  # noqa: E402
from l3locator.runner import EXIT_BAD_INPUT, one_line, run_batch_command  # noqa: E402


def log(line: str) -> None:
    """A line for people on stderr, prefixed with the script's name (tracebacks as they are)."""
    print(f"L3LocatorBatch: {line}" if "\n" not in line else line, file=sys.stderr)


def buildParser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="L3LocatorBatch.py", description="Find the L3 slice in many CT scans; one CSV row per scan.")
    parser.add_argument("--input", nargs="+", required=True, metavar="SCAN", help="NIfTI/NRRD files, DICOM folders, or folders of scans")
    parser.add_argument("--output", required=True, help="CSV file to write")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--markups-dir", help="folder for the <scan>_L3.mrk.json files (default: the CSV's folder)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = buildParser().parse_args(argv)
    markupsDirectory = args.markups_dir or str(Path(args.output).parent)
    try:
        return run_batch_command(args.input, args.output, log, model=args.model, device=args.device, output_dir=markupsDirectory,
                                 output_kinds=("markups",), output_dir_option="--markups-dir")
    except (L3LocatorError, OSError) as exc:
        log(f"error: {one_line(exc)}")
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))  # inside Slicer too: sys.exit ends the application with this status
