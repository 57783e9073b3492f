"""L3 annotations ("labels"): the file an annotator exports and training reads.

A training folder holds cases. A case is a CT file plus its label, side by side:

* ``<case>.nrrd`` / ``<case>.nii.gz`` / ``<case>.nii`` / a DICOM folder ``<case>/`` — the CT, and
* ``<case>.l3.json`` — the label written by :func:`write_label` (format below), **or**
* ``<case>_vertebrae.nii.gz`` — a vertebra label map in VerSe ids (L3 = 22), from which the L3
  range is derived: the slices where L3 is the majority vertebra label
  (:func:`l3_range_from_vertebra_map`).

Label JSON (``format`` = ``"l3locator-label"``, ``format_version`` = 1)::

    {"format": "l3locator-label", "format_version": 1,
     "case": "patient042", "image": "patient042.nrrd",
     "slice_axis": "k", "num_slices": 120,
     "l3_slice_index": 57, "l3_slice_range": [52, 62],        # 0-based, inclusive, image's own IJK
     "l3_position_ras": [0.0, -20.5, -310.2],                  # mm, RAS
     "source": "corrected",                                    # accepted | corrected | manual | label_map | phantom
     "annotator": "jdoe", "created": "2026-11-24T21:40:00+00:00",
     "model": "default.pt", "model_slice_index": 55}           # optional: what the model had said

Labels are never lost: writes are atomic and never replace an existing file unless asked.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import write_atomically
from .errors import LabelError
from .reading.formats import volume_file_stem

FORMAT = "l3locator-label"
FORMAT_VERSION = 1
LABEL_SUFFIX = ".l3.json"
#: ``<case>`` + this + a volume-file suffix is a vertebra label map of the case.
VERTEBRA_MAP_STEM = "_vertebrae"
#: The vertebra label map's usual (NIfTI) form.
VERTEBRA_MAP_SUFFIX = f"{VERTEBRA_MAP_STEM}.nii.gz"
#: ``<name>`` + this + a volume-file suffix is a tissue label map of an L3 slice (body
#: composition): ``l3locator find --output-dir`` writes ``<scan>_L3_tissues.nii.gz``.
TISSUE_MAP_STEM = "_tissues"
#: An annotator's corrected tissue segmentation of case ``<case>``'s L3 slice (Slicer ``.seg.nrrd``).
TISSUE_SEGMENTATION_SUFFIX = f"{TISSUE_MAP_STEM}.seg.nrrd"
L3_VERSE_ID = 22
SOURCES = ("accepted", "corrected", "manual", "label_map", "phantom")


def annotation_kind(path: str | os.PathLike) -> str | None:
    """What annotation file ``path`` names, by its name: ``"label"`` (an L3 label,
    ``.l3.json``), ``"vertebra label map"`` (``<case>_vertebrae`` + a volume suffix),
    ``"tissue label map"`` (``<name>_tissues`` + a volume suffix, or ``.seg.nrrd``); None for
    anything else, which may be a CT."""
    name = Path(path).name
    if name.lower().endswith(LABEL_SUFFIX):
        return "label"
    stem = volume_file_stem(name)
    if stem is None:
        return None
    if stem.endswith(VERTEBRA_MAP_STEM):
        return "vertebra label map"
    if stem.removesuffix(".seg").endswith(TISSUE_MAP_STEM):
        return "tissue label map"
    return None


@dataclass
class L3Label:
    """One case's L3 annotation (slice indices 0-based along ``slice_axis``; RAS mm)."""

    case: str
    image: str
    l3_slice_index: int
    l3_slice_range: tuple[int, int]
    source: str
    num_slices: int
    slice_axis: str = "k"
    l3_position_ras: list[float] | None = None
    annotator: str = ""
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    model: str | None = None
    model_slice_index: int | None = None

    def __post_init__(self) -> None:
        first, last = (int(v) for v in self.l3_slice_range)
        self.l3_slice_range = (first, last)
        self.l3_slice_index = int(self.l3_slice_index)
        if self.source not in SOURCES:
            raise LabelError(f"label source must be one of {SOURCES}, got {self.source!r}")
        if not 0 <= first <= self.l3_slice_index <= last < self.num_slices:
            raise LabelError(
                f"label for {self.case!r}: need 0 <= first <= index <= last < {self.num_slices}, "
                f"got range {self.l3_slice_range} and index {self.l3_slice_index}"
            )

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["l3_slice_range"] = list(self.l3_slice_range)
        return {"format": FORMAT, "format_version": FORMAT_VERSION, **values}


def label_path_for(folder: str | os.PathLike, case: str) -> Path:
    """Where the label of ``case`` lives in a training folder."""
    return Path(folder) / f"{case}{LABEL_SUFFIX}"


def write_label(label: L3Label, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``label`` as JSON atomically.

    The content goes to a temporary file in the same folder first; it then appears under
    ``path`` in one step (a hard link when ``overwrite`` is False, which fails if ``path``
    exists, so a concurrent or earlier label is never clobbered; a rename otherwise).

    Raises:
        LabelError: ``path`` exists and ``overwrite`` is False.
    """
    path = Path(path)
    text = json.dumps(label.to_dict(), indent=2, allow_nan=False) + "\n"
    try:
        write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"), overwrite=overwrite)
    except FileExistsError as exc:
        raise LabelError(f"a label already exists at {path}; not overwriting (choose overwrite explicitly)") from exc
    return path


def read_label(path: str | os.PathLike) -> L3Label:
    """Read and validate a label file.

    Raises:
        LabelError: missing, not JSON, not a label, newer format, or inconsistent values.
    """
    path = Path(path)
    try:
        values = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise LabelError(f"label file not found: {path}") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LabelError(f"{path}: not a readable label file ({exc})") from exc
    if not isinstance(values, dict) or values.get("format") != FORMAT:
        raise LabelError(f"{path}: not an L3Locator label (missing format marker {FORMAT!r})")
    if not isinstance(values.get("format_version"), int) or values["format_version"] > FORMAT_VERSION:
        raise LabelError(f"{path}: label format version {values.get('format_version')} is not supported")
    fields_ = {k: v for k, v in values.items() if k not in ("format", "format_version")}
    try:
        return L3Label(**fields_)
    except TypeError as exc:
        raise LabelError(f"{path}: unexpected or missing label fields ({exc})") from exc


def l3_range_from_vertebra_map(labels: np.ndarray, axial_axis: int = 2, l3_id: int = L3_VERSE_ID) -> tuple[int, int] | None:
    """Inclusive axial slice range where L3 is the *majority* vertebra label, or None.

    A slice counts as L3 when, among its vertebra voxels (any non-zero label), L3 has the most.
    Counting mere presence would stretch the range over the neighbours: the spinous process of
    L3 reaches down beside the L4 body. For a map with L3 present but never in the majority (a
    sliver at the scan's edge), the slices where it is present are returned.

    Args:
        labels: label map indexed ``[k, j, i]`` like :class:`~l3locator.volume.CTVolume` voxels.
        axial_axis: voxel axis (0 = i, 1 = j, 2 = k) along which slices are counted.
    """
    slices = np.moveaxis(np.asarray(labels), 2 - axial_axis, 0).reshape(labels.shape[2 - axial_axis], -1)
    present = np.flatnonzero((slices == l3_id).any(axis=1))
    if present.size == 0:
        return None
    majority = [k for k in present if np.argmax(np.bincount(slices[k][slices[k] > 0].astype(np.int64))) == l3_id]
    chosen = majority if majority else present
    return int(chosen[0]), int(chosen[-1])
