"""Try L3Locator with no data of your own: ``python -m l3locator.demo``.

Generates a synthetic abdominal CT phantom with a known L3, writes it as NIfTI, runs the same job
as ``l3locator find --output-dir`` on it with the shipped model (or ``--model``), and prints the
answer next to the truth. Everything goes to a new temporary folder (printed) unless
``--output-dir`` names one, so the demo never writes into the folder it is started from.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence

from .cli import print_result
from .errors import L3LocatorError


def main(argv: Sequence[str] | None = None) -> int:
    from .phantoms import generate_phantom, write_phantom_case
    from .runner import EXIT_BAD_INPUT, EXIT_OK, find_in_scan, one_line, prepare_run

    parser = argparse.ArgumentParser(prog="python -m l3locator.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", help="where the phantom and the outputs go (default: a new temporary folder)")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--seed", type=int, default=7, help="phantom seed")
    args = parser.parse_args(argv)

    try:
        settings = prepare_run(args.model, None, args.output_dir or tempfile.mkdtemp(prefix="l3locator-demo-"))
        phantom = generate_phantom(args.seed, shape_ij=(256, 256), slice_thickness_mm=2.5, extent="abdomen")
        ct_path = write_phantom_case(phantom, settings.output_dir, f"phantom{args.seed}", overwrite=True)["ct"]
        first, last = phantom.l3_range
        print(f"phantom written to {ct_path}: {phantom.volume.num_slices} slices of 2.5 mm, true L3 slices {first}-{last} (middle {(first + last) / 2:.1f})")
        result, outputs = find_in_scan(ct_path, settings)
    except (L3LocatorError, OSError) as exc:
        print(f"l3locator demo: error: {one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print_result(result, outputs, as_json=False)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
