"""What a run writes, and how: the files of one scan, the CSV of a batch, and the checks that an
output location can be written before any scan is read.

Per scan, in an output folder, under the scan's output name ``NAME`` (chosen by
:func:`l3locator.runner.output_names`; it may hold sub-folders, e.g. ``patA/ct``):

* ``NAME_L3.json`` (kind ``"result"``): the result, :meth:`L3Result.to_dict`;
* ``NAME_L3.mrk.json`` (kind ``"markups"``): the L3 point as a 3D Slicer markups file, only when
  L3 was found;
* ``NAME_L3_qc.png`` (kind ``"qc"``): the quality-control picture (:mod:`l3locator.qc`);
* with body composition measured at L3 (:mod:`l3locator.body_composition`):
  ``NAME_L3_tissues.nii.gz`` (kind ``"tissues"``), the tissue label map of the L3 slice (one
  slice, uint8: 1 muscle, 2 IMAT, 3 VAT, 4 SAT; the CT slice's geometry, so 3D Slicer overlays
  it), and ``NAME_L3_bodycomp.png`` (kind ``"bodycomp"``), the slice with the tissues coloured.

A scan's files are replaced together: the previous run's result JSON is removed first and the new
one is written last, and a markups file or body-composition file from a previous run is removed
when this run does not write it, so a result JSON always belongs with the files beside it. Every file is written through
:func:`l3locator.atomic.write_atomically` (a unique temporary file, then one rename), so parallel
runs into one folder never collide and a reader never sees half a file. JSON is strict (no
``NaN``).
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .atomic import write_atomically
from .errors import InputError
from .markups import write_markups_point

if TYPE_CHECKING:
    from .body_composition import BodyComposition
    from .pipeline import L3Result
    from .volume import CTVolume

#: The files a scan can get, by kind: the suffix appended to its output name.
OUTPUT_SUFFIXES = {
    "result": "_L3.json", "markups": "_L3.mrk.json", "qc": "_L3_qc.png", "tissues": "_L3_tissues.nii.gz", "bodycomp": "_L3_bodycomp.png",
}
OUTPUT_KINDS = tuple(OUTPUT_SUFFIXES)
#: Body composition columns of a batch row (empty unless measured): tissue areas in cm^2, the
#: muscle's mean HU, the skeletal muscle index in cm^2/m^2 (empty without a height).
AREA_COLUMNS = ("muscle_cm2", "imat_cm2", "vat_cm2", "sat_cm2")
BODY_COMPOSITION_COLUMNS = (*AREA_COLUMNS, "muscle_mean_hu", "smi_cm2_per_m2")
#: One row per scan of a batch: the result's key facts (RAS mm, 0-based inclusive slice indices),
#: or ``status`` ``"error"`` and the reason in ``error``; body composition at L3 when measured;
#: then the files written for the scan.
CSV_COLUMNS = (
    "input", "status", "l3_found", "l3_slice_index", "l3_slice_first", "l3_slice_last",
    "l3_r_mm", "l3_a_mm", "l3_s_mm", "confidence", "flags", "num_slices", "seconds", "error", "warnings",
    *BODY_COMPOSITION_COLUMNS,
    *(f"{kind}_file" for kind in OUTPUT_KINDS),
)
#: Joins a result's warnings in one CSV cell (flags, which hold no spaces, are joined by ``;``).
WARNING_SEPARATOR = " | "


def to_json(document: Any, *, indent: int | None = None) -> str:
    """Strict JSON (``NaN`` and infinities refused with ``ValueError``) of ``document``."""
    return json.dumps(document, indent=indent, allow_nan=False)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return write_atomically(path, lambda temporary: Path(temporary).write_text(text, encoding="utf-8"))


def write_tissue_map(path: str | os.PathLike, volume: CTVolume, composition: BodyComposition) -> Path:
    """Write the tissue label map of ``composition`` as a one-slice NIfTI file (RAS, mm; the CT
    slice's geometry) at ``path``, atomically."""
    import nibabel as nib

    from .body_composition import TISSUE_LABELS, slice_label_volume

    labels = slice_label_volume(volume, composition.slice_index, composition.labels)
    image = nib.Nifti1Image(labels.voxels.T, labels.ijk_to_ras)
    image.set_sform(labels.ijk_to_ras, code=1)
    image.set_qform(labels.ijk_to_ras, code=1)
    image.header.set_xyzt_units("mm", "sec")
    image.header["descrip"] = " ".join(f"{value}={name}" for name, value in TISSUE_LABELS.items()).encode("ascii")
    return write_atomically(path, lambda temporary: nib.save(image, temporary), keep_suffixes=True)


def write_scan_outputs(
    folder: str | os.PathLike, name: str, volume: CTVolume, result: L3Result, kinds: Sequence[str] = OUTPUT_KINDS,
    composition: BodyComposition | None = None,
) -> dict[str, str]:
    """Write the files of ``kinds`` for one scan as ``folder/NAME<suffix>`` (see the module
    docstring): the body-composition files only with a ``composition`` (measured on
    ``volume``); returns ``{kind: path}`` of the files written."""
    from .qc import write_body_composition_png, write_qc_png  # Pillow: only when a picture is drawn

    unknown = set(kinds) - set(OUTPUT_KINDS)
    if unknown:
        raise ValueError(f"unknown output kinds {sorted(unknown)}; expected some of {OUTPUT_KINDS}")
    paths = {kind: Path(folder) / f"{name}{OUTPUT_SUFFIXES[kind]}" for kind in OUTPUT_KINDS if kind in kinds}
    written: dict[str, str] = {}
    if "result" in paths:
        paths["result"].unlink(missing_ok=True)  # until the new one is written, no result vouches for the other files
    if "markups" in paths:
        if result.l3_found:
            description = f"L3 slice {result.l3_slice_index}, confidence {result.confidence:.2f}, model {result.model}"
            written["markups"] = str(write_markups_point(paths["markups"], result.l3_position_ras, description=description))
        else:
            paths["markups"].unlink(missing_ok=True)
    if "qc" in paths:
        written["qc"] = str(write_qc_png(paths["qc"], volume, result))
    for kind, write in (("tissues", write_tissue_map), ("bodycomp", write_body_composition_png)):
        if kind in paths:
            if composition is not None:
                written[kind] = str(write(paths[kind], volume, composition))
            else:
                paths[kind].unlink(missing_ok=True)
    if "result" in paths:
        written["result"] = str(write_text(paths["result"], to_json(result.to_dict(), indent=2) + "\n"))
    return written


def csv_row(source: str, result: L3Result | None = None, outputs: Mapping[str, str] | None = None, error: str = "") -> dict[str, object]:
    """One CSV row of a batch (:data:`CSV_COLUMNS`): the result's key facts, its body
    composition when measured (``extra["body_composition"]``), and the files written for it,
    or, without a result, ``status`` ``"error"`` and ``error``."""
    if result is None:
        return {"input": source, "status": "error", "error": error}
    r, a, s = result.l3_position_ras or ("", "", "")
    first, last = result.l3_slice_range or ("", "")
    return {
        "input": source, "status": "ok", "l3_found": result.l3_found, "l3_slice_index": result.l3_slice_index,
        "l3_slice_first": first, "l3_slice_last": last, "l3_r_mm": r, "l3_a_mm": a, "l3_s_mm": s,
        "confidence": round(result.confidence, 4), "flags": ";".join(result.flags), "num_slices": result.num_slices,
        "seconds": round(result.seconds, 3), "error": "", "warnings": WARNING_SEPARATOR.join(result.warnings),
        **_body_composition_cells(result.extra.get("body_composition")),
        **{f"{kind}_file": path for kind, path in (outputs or {}).items()},
    }


def _body_composition_cells(measured: Mapping[str, Any] | None) -> dict[str, object]:
    """The :data:`BODY_COMPOSITION_COLUMNS` cells of a measurement (:meth:`BodyComposition.to_dict`); none without one."""
    if not measured:
        return {}
    areas, mean_hu, smi = measured["areas_cm2"], measured["mean_hu"], measured["smi_cm2_per_m2"]
    return {
        **{column: areas[column.removesuffix("_cm2")] for column in AREA_COLUMNS},
        "muscle_mean_hu": "" if mean_hu["muscle"] is None else mean_hu["muscle"],
        "smi_cm2_per_m2": "" if smi is None else smi,
    }


def write_csv(path: str | os.PathLike, rows: Sequence[Mapping[str, object]]) -> Path:
    """Write a batch's rows (:data:`CSV_COLUMNS`, missing cells empty) to ``path`` atomically."""

    def write(temporary: str) -> None:
        with open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.DictWriter(handle, fieldnames=CSV_COLUMNS, restval="")
            writer.writeheader()
            writer.writerows(rows)

    return write_atomically(path, write)


def _folder_problem(folder: Path) -> str | None:
    """Why no file can be written in ``folder`` (created if missing), as a phrase about it, or None."""
    existing = next((candidate for candidate in (folder, *folder.parents) if candidate.exists()), Path("."))
    if not existing.is_dir():
        return "is a file, not a folder" if existing == folder else f"lies under the file {existing}"
    if not os.access(existing, os.W_OK | os.X_OK):
        return "is not writable" if existing == folder else f"cannot be created: {existing} is not writable"
    return None


def check_output_folder(folder: str | os.PathLike, option: str = "--output-dir") -> Path:
    """Check, without creating anything, that ``folder`` is or can become a writable folder.

    Raises:
        InputError: ``folder`` is a file, lies under one, or cannot be written; the message
            names ``option``, the folder and the reason.
    """
    folder = Path(folder)
    problem = _folder_problem(folder)
    if problem:
        raise InputError(f"{option} {folder}: {problem}")
    return folder


def check_output_file(path: str | os.PathLike, option: str = "--output") -> Path:
    """Check, without creating anything, that a file can be written at ``path``.

    Raises:
        InputError: ``path`` is a folder, or its folder is a file, lies under one, or cannot
            be written; the message names ``option``, the path and the reason.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; give a file name, e.g. {path / 'results.csv'}")
    problem = _folder_problem(path.parent)
    if problem:
        raise InputError(f"{option} {path}: its folder {path.parent} {problem}")
    return path
