"""Try L3Locator with no data of your own: ``python -m l3locator.demo``.

Generates a synthetic abdominal CT phantom with a known L3, writes it as NIfTI, runs the same job
as ``l3locator find --output-dir`` on it with the shipped model (or ``--model``), and prints the
answer next to the truth.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .cli import EXIT_BAD_INPUT, find_and_write, summary_line
from .errors import L3LocatorError
from .phantom import generate_phantom, write_phantom_case


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m l3locator.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", default="l3locator-demo", help="where the phantom and the outputs go")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--seed", type=int, default=7, help="phantom seed")
    args = parser.parse_args(argv)

    output = Path(args.output_dir)
    phantom = generate_phantom(args.seed, shape_ij=(256, 256), slice_thickness_mm=2.5, extent="abdomen")
    ct_path = write_phantom_case(phantom, output, f"phantom{args.seed}", overwrite=True)["ct"]
    first, last = phantom.l3_range
    print(f"phantom written to {ct_path}: {phantom.volume.num_slices} slices of 2.5 mm, true L3 slices {first}-{last} (middle {(first + last) / 2:.1f})")
    try:
        result, outputs = find_and_write(str(ct_path), args.model, None, str(output))
    except L3LocatorError as exc:
        print(f"l3locator demo: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(summary_line(result))
    for kind, path in outputs.items():
        print(f"  {kind}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
