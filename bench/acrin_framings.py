"""The counted real abdomen framed the way abdominal CTs come, and what the level check says there.

    python bench/acrin_framings.py MODEL [MODEL ...] [--output bench/results/acrin_framings.md]

Most abdominal CTs show the lowest ribs but end above the sacrum (issue 16's held-out abdomens:
lowest ribs down to L4, 1.6 mm slices, answered one level too high with confidence 0.98 and no
flag), so the vertebra count from both anchors abstains on them. ``../shared`` has one real scan
with both anchors and a hand-counted L3 (ACRIN, slices 47-54 of 99 at 4.25 mm; ``accuracy.COUNTED_LEVELS``).
This script cuts it into such framings (:data:`FRAMINGS`: the ribs without the sacrum, the sacrum
without the ribs), at its own slices and linearly interpolated to 1.6 mm, and answers each with
every model as ``l3locator find --exhaustive`` does, with the level check and without it (the
same scores). Per row: the answer (in ACRIN's own slice numbers, its counted level and its
distance from L3's middle), the confidence and flags with and without the check, and the count
the check used (both anchors, or ``one_count_range``: one anchor only).

A model that answers L3 right shows what the check costs (a flag on a right answer would be a
false alarm); an older model that answers L2 or L1 on this scan shows what it buys. Older shipped
models come from the repository history, e.g. ``git show 117784f:L3Locator/l3locator/models/default.pt > m117784f.pt``.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path

import numpy as np

from accuracy import COUNTED_LEVELS, SHARED_DATA
from level_count import cut
from speed import resample_slices
from l3locator.modelfile import load_model
from l3locator.pipeline import find_l3, result_from_probabilities
from l3locator.reading import load_ct
from l3locator.volume import CTVolume

NAME = "real/acrin_flt_breast001_abdomen_ct.nii.gz"
#: (label, first, last): inclusive ranges of ACRIN's slices (0 = lowest; counted bodies in
#: accuracy.COUNTED_LEVELS: L5 31-37, L4 39-45, L3 47-54, L2 56-62, L1 64-70, T12 72-78).
FRAMINGS = (("whole scan (sacrum and ribs)", 0, 98),
            ("from mid L4 up (ribs, no sacrum)", 42, 98),
            ("from the L4/L5 disc up (ribs, no sacrum)", 38, 98),
            ("from the top of L5 up (ribs, no sacrum)", 31, 98),
            ("up to the L1/T12 disc (sacrum, no ribs)", 0, 71),
            ("up to the L2/L1 disc (sacrum, no ribs)", 0, 63))
#: Thin slices as in the held-out abdomens (mm).
THIN_MM = 1.6


def level_of(native_slice: float) -> str:
    """ACRIN's counted level at a slice (within one slice of a body; a disc otherwise)."""
    for level, (first, last) in COUNTED_LEVELS[NAME].items():
        if first - 1 <= round(native_slice) <= last + 1:
            return level
    return "disc/outside"


def framed(volume: CTVolume) -> list[tuple[str, CTVolume, int, float]]:
    """Each framing at ACRIN's slices and at :data:`THIN_MM`: (label, volume, first native
    slice, native slices per stored slice)."""
    out = []
    for label, first, last in FRAMINGS:
        part = cut(volume, first, last)
        out.append((label, part, first, 1.0))
        thin = resample_slices(part, int(round((last - first) * part.slice_thickness / THIN_MM)) + 1)
        out.append((f"{label}, {thin.slice_thickness:.2f} mm", thin, first, (last - first) / (thin.num_slices - 1)))
    return out


def answer_text(result, first: int, step: float) -> str:
    if not result.l3_found:
        return "none"
    native = first + result.l3_slice_index * step
    middle = sum(COUNTED_LEVELS[NAME]["L3"]) / 2
    return f"{native:.1f}: {level_of(native)}, {abs(native - middle):.1f} off"


def count_text(count: dict | None, first: int, step: float) -> str:
    """The count the check used, in ACRIN's slices."""
    if count is None:
        return "not run"
    for key, kind in (("l3_slice_range", "both anchors"), ("one_count_range", "one anchor")):
        if count.get(key):
            a, b = count[key]
            return f"{kind}: {first + a * step:.0f}-{first + b * step:.0f}"
    return "abstained"


def rows(model_path: str, volume: CTVolume) -> list[str]:
    model = load_model(model_path)
    lines = []
    for label, part, first, step in framed(volume):
        checked = find_l3(part, model, exhaustive=True)
        unchecked = result_from_probabilities(part, np.asarray(checked.slice_probabilities), model_name=model.name, seconds=0.0,
                                              rule=model.locate_rule, level_check=False)
        cells = (Path(model_path).name, label, part.num_slices, answer_text(unchecked, first, step),
                 f"{unchecked.confidence:.2f}", ";".join(unchecked.flags) or "-", answer_text(checked, first, step),
                 f"{checked.confidence:.2f}", ";".join(checked.flags) or "-", count_text(checked.extra.get("level_count"), first, step))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
        print(lines[-1], flush=True)
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+")
    parser.add_argument("--output", help="also write the table to this Markdown file")
    args = parser.parse_args(argv)
    path = SHARED_DATA / NAME
    if not path.is_file():
        print(f"{path} not found", file=sys.stderr)
        return 1
    volume = load_ct(path)
    lines = ["# The counted real abdomen, framed as abdominal CTs come: the level check with one anchor", "",
             f"`python bench/acrin_framings.py {' '.join(Path(m).name for m in args.models)}` "
             f"({date.today().isoformat()}). ACRIN's counted L3: slices 47-54 of 99 (4.25 mm); answers in "
             "its own slice numbers, with the counted level there and the distance from L3's middle "
             "(slices). Exhaustive scoring; the same scores read without and with the level check.", "",
             "| model | framing | slices | answer without the level check | conf | flags | answer with it | conf | flags | count used |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for model_path in args.models:
        lines += rows(model_path, volume)
    if args.output:
        Path(args.output).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
