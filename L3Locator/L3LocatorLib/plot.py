"""The per-slice L3 probability plot of a volume: a table, two plot series and a chart (Qt-free).

One table row per axial slice: its index, the model's L3 probability, and 1 inside the detected
L3 range (0 elsewhere). The nodes are made once per volume (referenced from the volume node) and
reused by later runs, so running again updates the plot instead of adding another.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

import slicer

from .volumes import referencedOrNewNode

if TYPE_CHECKING:
    from l3locator import L3Result

# Volume node reference roles of the nodes made for it.
REFERENCE_TABLE = "L3LocatorProbabilityTable"
REFERENCE_CHART = "L3LocatorProbabilityChart"
# Table columns.
COLUMN_SLICE = "Slice index"
COLUMN_PROBABILITY = "L3 probability"
COLUMN_RANGE = "Detected L3 range"
#: Colour (RGB, 0–1) and dashed line of each plotted column.
SERIES_STYLES = {COLUMN_PROBABILITY: ((0.1, 0.35, 0.8), False), COLUMN_RANGE: ((0.85, 0.1, 0.1), True)}


def updateProbabilityPlot(volumeNode, result: L3Result):
    """Fill the volume's table and chart with ``result``'s per-slice probabilities. Returns the chart node."""
    name = volumeNode.GetName()
    probabilities = np.asarray(result.slice_probabilities, dtype=np.float64)
    inRange = np.zeros_like(probabilities)
    if result.l3_slice_range is not None:
        first, last = result.l3_slice_range
        inRange[first : last + 1] = 1.0
    tableNode = referencedOrNewNode(volumeNode, REFERENCE_TABLE, "vtkMRMLTableNode", f"{name} L3 probability table")
    slicer.util.updateTableFromArray(
        tableNode, [np.arange(len(probabilities), dtype=np.int32), probabilities, inRange], [COLUMN_SLICE, COLUMN_PROBABILITY, COLUMN_RANGE]
    )
    chartNode = referencedOrNewNode(volumeNode, REFERENCE_CHART, "vtkMRMLPlotChartNode", f"{name} L3 probability")
    chartNode.SetTitle(f"L3 probability per slice: {name}")
    chartNode.SetXAxisTitle("Slice index")
    chartNode.SetYAxisTitle("Probability")
    chartNode.SetYAxisRangeAuto(False)
    chartNode.SetYAxisRange(0.0, 1.05)
    for column, (color, dashed) in SERIES_STYLES.items():
        seriesNode = _chartSeries(chartNode, f"{name} {column}")
        seriesNode.SetAndObserveTableNodeID(tableNode.GetID())
        seriesNode.SetXColumnName(COLUMN_SLICE)
        seriesNode.SetYColumnName(column)
        seriesNode.SetPlotType(slicer.vtkMRMLPlotSeriesNode.PlotTypeScatter)
        seriesNode.SetMarkerStyle(slicer.vtkMRMLPlotSeriesNode.MarkerStyleNone)
        seriesNode.SetLineStyle(slicer.vtkMRMLPlotSeriesNode.LineStyleDash if dashed else slicer.vtkMRMLPlotSeriesNode.LineStyleSolid)
        seriesNode.SetColor(*color)
    return chartNode


def getProbabilityTable(volumeNode):
    """The volume's probability table node, or None before its first run."""
    return volumeNode.GetNodeReference(REFERENCE_TABLE)


def getProbabilityChart(volumeNode):
    """The volume's probability chart node, or None before its first run."""
    return volumeNode.GetNodeReference(REFERENCE_CHART)


def _chartSeries(chartNode, name: str):
    for index in range(chartNode.GetNumberOfPlotSeriesNodes()):
        seriesNode = chartNode.GetNthPlotSeriesNode(index)
        if seriesNode is not None and seriesNode.GetName() == name:
            return seriesNode
    seriesNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLPlotSeriesNode", name)
    chartNode.AddAndObservePlotSeriesNodeID(seriesNode.GetID())
    return seriesNode
