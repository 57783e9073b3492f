"""The picture of an evaluation report: predicted vs true L3 slice, the summary and the per-fold table.

Drawn with Pillow only. Left: a scatter of predicted against true slice index, one dot per
case where an L3 was found (green within 2 slices, orange farther), the identity line (grey)
and the least-squares line over those cases (blue). Failures (no L3 found) have no predicted
slice, so they are not in the scatter: they are red crosses at their true slice in a separate
"no L3 found" strip under the x axis. Right: the report's warnings (red), the summary numbers
and one row per fold.
"""

from __future__ import annotations

import textwrap
from typing import Any

from PIL import Image, ImageDraw, ImageFont

WIDTH, HEIGHT = 1100, 560
PLOT_BOX = (70, 60, 520, 470)  # left, top, right, bottom of the scatter area, pixels
FAILURE_STRIP = (PLOT_BOX[3] + 26, PLOT_BOX[3] + 44)  # top, bottom of the "no L3 found" strip, pixels
TEXT_LEFT, WRAP_CHARS, MAX_WARNING_LINES = 560, 78, 7
GREEN, ORANGE, RED, BLUE, GREY, BLACK = (40, 160, 70), (235, 140, 20), (210, 40, 40), (40, 90, 200), (160, 160, 160), (0, 0, 0)


def _font(size: int) -> ImageFont.ImageFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    span = max(high - low, 1.0)
    raw = span / count
    step = min((s * 10 ** e for e in range(-1, 6) for s in (1, 2, 5) if s * 10 ** e >= raw), default=raw)
    first = step * int(low // step)
    ticks = []
    value = first
    while value <= high + 1e-9:
        if value >= low - 1e-9:
            ticks.append(value)
        value += step
    return ticks


def render_report(report: dict[str, Any]) -> Image.Image:
    """The report picture (RGB, :data:`WIDTH` x :data:`HEIGHT`)."""
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    small, normal, title = _font(12), _font(14), _font(18)
    labelled = [r for r in report["cases"] if r["true_index"] is not None]
    answered = [r for r in labelled if not r["failure"]]
    failed = [r for r in labelled if r["failure"]]
    left, top, right, bottom = PLOT_BOX
    values = [r["true_index"] for r in labelled] + [r["predicted_index"] for r in answered]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = max(1.0, 0.05 * (high - low))
    low, high = low - pad, high + pad

    def to_px(x: float, y: float) -> tuple[float, float]:
        return (left + (x - low) / (high - low) * (right - left), bottom - (y - low) / (high - low) * (bottom - top))

    def in_panel(x: float, y: float) -> tuple[float, float]:
        px, py = to_px(x, y)
        return px - left, py - top

    draw.text((left, 8), "Predicted vs true L3 slice index", fill=BLACK, font=title)
    for tick in _nice_ticks(low, high):
        x, _ = to_px(tick, low)
        _, y = to_px(low, tick)
        draw.line([(x, bottom), (x, bottom + 5)], fill=BLACK)
        draw.text((x - 10, bottom + 8), f"{tick:g}", fill=BLACK, font=small)
        draw.line([(left - 5, y), (left, y)], fill=BLACK)
        draw.text((left - 45, y - 7), f"{tick:g}", fill=BLACK, font=small)
    draw.text(((left + right) / 2 - 60, FAILURE_STRIP[1] + 6), "true slice (middle of label)", fill=BLACK, font=normal)
    draw.text((8, top - 22), "predicted slice", fill=BLACK, font=normal)
    # Lines and dots are drawn on a panel the size of the plot area, so nothing spills outside it.
    panel = Image.new("RGB", (right - left, bottom - top), "white")
    pen = ImageDraw.Draw(panel)
    pen.line([in_panel(low, low), in_panel(high, high)], fill=GREY, width=1)
    regression = report["summary"]["regression"]
    if regression["slope"] is not None:
        pen.line([in_panel(low, regression["slope"] * low + regression["intercept"]),
                  in_panel(high, regression["slope"] * high + regression["intercept"])], fill=BLUE, width=2)
    for r in answered:
        x, y = in_panel(r["true_index"], r["predicted_index"])
        colour = GREEN if r["error_slices"] <= 2 else ORANGE
        pen.ellipse([(x - 4, y - 4), (x + 4, y + 4)], fill=colour, outline=BLACK)
    image.paste(panel, (left, top))
    draw.rectangle(PLOT_BOX, outline=BLACK)
    if failed:
        strip_top, strip_bottom = FAILURE_STRIP
        draw.rectangle((left, strip_top, right, strip_bottom), outline=RED)
        draw.text((4, strip_top + 2), "no L3 found", fill=RED, font=small)
        middle = (strip_top + strip_bottom) / 2
        for r in failed:
            x, _ = to_px(r["true_index"], low)
            draw.line([(x - 5, middle - 5), (x + 5, middle + 5)], fill=RED, width=2)
            draw.line([(x - 5, middle + 5), (x + 5, middle - 5)], fill=RED, width=2)

    s = report["summary"]
    es, em = s["error_slices"], s["error_mm"]
    lines = [
        f"mode: {report.get('mode', '')}" + (f", {report['folds']} folds" if report.get("folds") else "")
        + {True: ", IN-SAMPLE (cases the model was made from)", False: "", None: ", in-sample unknown"}[report["in_sample"]],
        f"cases with L3: {s['cases']}   failures (no L3 found, red strip): {s['failures']}",
        f"cases without L3: {s['cases_without_l3']}   false positives: {s['false_positive_cases']}",
        f"error (slices): {_fmt(es['mean'])} ± {_fmt(es['sd'])}, median {_fmt(es['median'])}, max {_fmt(es['max'])}",
        f"error (mm): {_fmt(em['mean'])} ± {_fmt(em['sd'])}, median {_fmt(em['median'])}, max {_fmt(em['max'])}",
        f"within 1 slice: {_fmt(s['within_1'])}   within 2 slices: {_fmt(s['within_2'])}",
        f"slice F1: {_fmt(s['slice_f1'], 3)} (precision {_fmt(s['slice_precision'], 3)}, recall {_fmt(s['slice_recall'], 3)})",
        f"predicted = {_fmt(regression['slope'], 3)} x true + {_fmt(regression['intercept'], 2)},  R^2 {_fmt(regression['r2'], 3)}"
        f"  ({regression['cases']} cases with an answer)",
    ]
    x0, y = TEXT_LEFT, 40
    draw.text((x0, 10), "Summary", fill=BLACK, font=title)
    warning_lines = [line for warning in report["warnings"] for line in textwrap.wrap(f"! {warning}", WRAP_CHARS, subsequent_indent="  ")]
    if len(warning_lines) > MAX_WARNING_LINES:
        warning_lines = warning_lines[: MAX_WARNING_LINES - 1] + ["  ... (all warnings are in the report JSON)"]
    for line in warning_lines:
        draw.text((x0, y), line, fill=RED, font=normal)
        y += 20
    if warning_lines:
        y += 6
    for line in lines:
        draw.text((x0, y), line, fill=BLACK, font=normal)
        y += 22
    y += 14
    draw.text((x0, y), "Per fold", fill=BLACK, font=title)
    y += 28
    columns = (("fold", 0), ("cases", 60), ("failures", 125), ("mean err", 210), ("within 2", 300), ("slice F1", 390))
    for name, dx in columns:
        draw.text((x0 + dx, y), name, fill=BLACK, font=normal)
    y += 6
    draw.line([(x0, y + 14), (WIDTH - 20, y + 14)], fill=BLACK)
    y += 20
    for entry in report["per_fold"]:
        cells = ("all" if entry["fold"] is None else str(entry["fold"]), str(entry["cases"]), str(entry["failures"]),
                 _fmt(entry["mean_error_slices"]), _fmt(entry["within_2"]), _fmt(entry["slice_f1"], 3))
        for (_, dx), cell in zip(columns, cells):
            draw.text((x0 + dx, y), cell, fill=BLACK, font=normal)
        y += 20
        if y > HEIGHT - 20:
            break
    return image
