"""Write the L3 point as a 3D Slicer markups file (``.mrk.json``), outside Slicer.

Inside Slicer the module uses real markups nodes; this writer serves the CLI and scripts. The
file states its coordinate system (``"RAS"``) and units (``"mm"``), which Slicer honours on load.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from .atomic import write_atomically

SCHEMA = "https://raw.githubusercontent.com/slicer/slicer/main/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"


def markups_document(position_ras: list[float], *, label: str = "L3", description: str = "") -> dict:
    """A markups JSON document holding one fiducial point at ``position_ras`` (mm, RAS)."""
    point = {
        "id": "1",
        "label": label,
        "description": description,
        "associatedNodeID": "",
        "position": [float(v) for v in position_ras],
        "orientation": [-1.0, -0.0, -0.0, -0.0, -1.0, -0.0, 0.0, 0.0, 1.0],
        "selected": True,
        "locked": False,
        "visibility": True,
        "positionStatus": "defined",
    }
    return {
        "@schema": SCHEMA,
        "markups": [
            {
                "type": "Fiducial",
                "coordinateSystem": "RAS",
                "coordinateUnits": "mm",
                "locked": False,
                "fixedNumberOfControlPoints": False,
                "labelFormat": "%N-%d",
                "lastUsedControlPointNumber": 1,
                "controlPoints": [point],
                "measurements": [],
            }
        ],
    }


def write_markups_point(path: str | os.PathLike, position_ras: list[float], *, label: str = "L3", description: str = "") -> Path:
    """Write a one-point ``.mrk.json`` atomically (temporary file, then rename); strict JSON
    (a non-finite coordinate raises ``ValueError`` and nothing is written)."""
    text = json.dumps(markups_document(position_ras, label=label, description=description), indent=2, allow_nan=False)
    return write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def read_markups_points(path: str | os.PathLike) -> list[list[float]]:
    """Control point positions of the first markup in a ``.mrk.json``, converted to RAS mm."""
    document = json.loads(Path(path).read_text(encoding="utf-8"))
    markup = document["markups"][0]
    flip = markup.get("coordinateSystem", "LPS") == "LPS"
    return [[-p["position"][0], -p["position"][1], p["position"][2]] if flip else list(p["position"]) for p in markup["controlPoints"]]
