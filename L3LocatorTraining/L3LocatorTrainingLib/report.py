"""The cross-validation report of a training run: read, as one line for people, and as a plot;
for a model adapted from another, the comparison of the two on the same held-out cases.

The report is the core's ``cv_report.json`` (:func:`l3locator.training.evaluate.write_report`);
the plot (predicted against true L3 slice per case, with the identity line) is made of MRML
table, plot series and chart nodes, reused across calls.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

import slicer

TABLE_NAME = "L3LocatorTraining predicted vs true"
CHART_NAME = "L3LocatorTraining cross-validation"
COLUMN_TRUE, COLUMN_PREDICTED, COLUMN_IDENTITY = "True L3 slice", "Predicted L3 slice", "Identity"


def readReport(path: str | Path) -> dict[str, Any]:
    """The cross-validation report JSON written by the run."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def reportText(report: dict[str, Any]) -> str:
    """e.g. ``25 cases: L3 slice error 0.84 ± 1.10 slices (median 0.50, max 5); 92% within 2 slices; slice F1 0.871``."""
    summary = report["summary"]
    errors = summary["error_slices"]

    def number(value, digits=2):
        return "n/a" if value is None else f"{value:.{digits}f}"

    text = (
        f"{summary['cases']} case(s): L3 slice error {number(errors['mean'])} ± {number(errors['sd'])} slices "
        f"(median {number(errors['median'])}, max {number(errors['max'], 1)})"
    )
    if summary.get("within_2") is not None:
        text += f"; {100 * summary['within_2']:.0f}% within 2 slices"
    if summary.get("slice_f1") is not None:
        text += f"; slice F1 {summary['slice_f1']:.3f}"
    if summary.get("failures"):
        text += f"; {summary['failures']} case(s) without an answer"
    return text + "."


def comparisonText(comparison: dict[str, Any]) -> str:
    """The parent-vs-adapted comparison of the report (``comparison``) for people, e.g. ``Against
    default.pt on the same 10 held-out case(s): mean L3 error 4.20 → 1.10 slices (7 improved, 1
    worse). Recommended: use the adapted model.``"""
    parent, adapted = comparison["parent"], comparison["adapted"]
    name = comparison["parent_model"]["name"]

    def errors(model: dict[str, Any]) -> str:
        mean = model["mean_error_slices"]
        text = "n/a" if mean is None else f"{mean:.2f}"
        return text + (f" ({model['failures']} without an answer)" if model["failures"] else "")

    text = (f"Against {name} on the same {comparison['cases']} held-out case(s): mean L3 error {errors(parent)} → {errors(adapted)} slices "
            f"({comparison['cases_improved']} improved, {comparison['cases_worse']} worse).")
    if comparison["recommended"]:
        return text + " Recommended: use the adapted model."
    verdict = {"worse": "worse than", "no_gain": "no better than"}.get(comparison["verdict"], "not comparable with")
    return text + f" NOT RECOMMENDED: the adapted model is {verdict} {name}; keep using {name}."


def showReportPlot(report: dict[str, Any]):
    """Predicted vs true L3 slice per case (scatter) with the identity line, in
    ``slicer.mrmlScene``. Cases where no L3 was found are left out (their error is counted as
    the distance to the scan's far edge in the report, which is no prediction to plot; the
    report's text gives their number). Returns the chart node."""
    rows = [
        r for r in report["cases"]
        if r.get("true_index") is not None and r.get("predicted_index") is not None and not r.get("failure")
    ]
    true = np.array([r["true_index"] for r in rows], dtype=np.float64)
    predicted = np.array([r["predicted_index"] for r in rows], dtype=np.float64)
    tableNode = _singleton("vtkMRMLTableNode", TABLE_NAME)
    slicer.util.updateTableFromArray(tableNode, [true, predicted, true], [COLUMN_TRUE, COLUMN_PREDICTED, COLUMN_IDENTITY])
    chartNode = _singleton("vtkMRMLPlotChartNode", CHART_NAME)
    chartNode.SetTitle("Cross-validation: predicted vs true L3 slice")
    chartNode.SetXAxisTitle("True L3 slice (middle of the labelled range)")
    chartNode.SetYAxisTitle("Predicted L3 slice")
    for column, plotType, color in (
        (COLUMN_PREDICTED, slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter, (0.1, 0.35, 0.8)),
        (COLUMN_IDENTITY, slicer.vtkMRMLPlotSeriesNode.PlotTypeLine, (0.6, 0.6, 0.6)),
    ):
        seriesNode = _singleton("vtkMRMLPlotSeriesNode", f"L3LocatorTraining {column}")
        seriesNode.SetAndObserveTableNodeID(tableNode.GetID())
        seriesNode.SetXColumnName(COLUMN_TRUE)
        seriesNode.SetYColumnName(column)
        seriesNode.SetPlotType(plotType)
        if plotType == slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter:
            seriesNode.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleNone)
            seriesNode.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleCircle)
        seriesNode.SetColor(*color)
        if not chartNode.HasPlotSeriesNodeID(seriesNode.GetID()):
            chartNode.AddAndObservePlotSeriesNodeID(seriesNode.GetID())
    return chartNode


def _singleton(className: str, name: str):
    node = slicer.mrmlScene.GetFirstNode(name, className)
    return node if node is not None else slicer.mrmlScene.AddNewNodeByClass(className, name)
