"""What the network sees under each contrast stretch: the same real and phantom slices, percentile
(the paper's per-slice 1-99 % stretch) beside window (the HU clip window mapped to [0, 1]).

    python bench/stretch_views.py [--output bench/results/stretch/views.png]

Rows: every real scan in ../shared (the middle of L3 where it is labelled or counted, else the
lowest slice), then the middle of L3 on two held-out phantoms (seeds 1,000,000+, vertebrae from
the VerSe mask where present). Above each percentile picture: the slice's 99th percentile in HU
after the clip and resize, the value the percentile stretch maps to white. Read with
`results/ablation_stretch.md`.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from accuracy import phantom_cases, real_cases, vertebra_templates  # noqa: E402
from l3locator.atomic import write_atomically  # noqa: E402
from l3locator.preprocessing import PreprocessingConfig, preprocess_slices  # noqa: E402

PERCENTILE = PreprocessingConfig(input_size=128)
WINDOW = replace(PERCENTILE, stretch="window")


def picked_slices() -> list[tuple[str, np.ndarray]]:
    """(label, HU slice): the middle of L3 on the real scans with L3, the lowest slice of those
    without (../shared, where present), then the middle of L3 on two held-out phantoms."""
    out = []
    for case in real_cases():
        index = 0 if case.truth_range is None else (case.truth_range[0] + case.truth_range[1]) // 2
        where = "lowest slice" if case.truth_range is None else "L3 middle"
        out.append((f"{case.name}, {where} ({index})", case.volume.axial_stack()[index]))
    templates, _ = vertebra_templates(None)
    for case in phantom_cases(2, 256, templates):
        middle = (case.truth_range[0] + case.truth_range[1]) // 2
        out.append((f"{case.name}, L3 middle ({middle})", case.volume.axial_stack()[middle]))
    return [(label, np.asarray(hu, dtype=np.float32)) for label, hu in out]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "stretch" / "views.png"))
    args = parser.parse_args(argv)
    rows = picked_slices()
    figure, axes = plt.subplots(len(rows), 2, figsize=(6, 3 * len(rows)), squeeze=False)
    for (label, hu), (left, right) in zip(rows, axes):
        stretched = preprocess_slices(torch.from_numpy(hu[None]), PERCENTILE)[0].numpy()
        windowed = preprocess_slices(torch.from_numpy(hu[None]), WINDOW)[0].numpy()
        # The window output is the clipped, resized slice in HU, rescaled: its 99th percentile is
        # the HU the percentile stretch maps to white.
        p99 = float(np.percentile(windowed, PERCENTILE.stretch_high_percentile)) * (WINDOW.hu_max - WINDOW.hu_min) + WINDOW.hu_min
        for axis, image, name in ((left, stretched, f"percentile (white = {p99:.0f} HU)"), (right, windowed, "window [-200, 1500] HU")):
            axis.imshow(image, cmap="gray", vmin=0, vmax=1)
            axis.set_title(f"{label}\n{name}", fontsize=7)
            axis.axis("off")
    figure.tight_layout()
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    write_atomically(args.output, lambda temporary: figure.savefig(temporary, format="png", dpi=80))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
