"""Find the annotated cases of a training folder and their ground truth (the L3 slice range).

A case is a CT beside its label (see :mod:`l3locator.labels`):

* ``<case>.l3.json`` (an L3Locator label) with the CT it names (its ``image`` field) or, failing
  that, ``<case>.nii.gz`` / ``<case>.nii`` / ``<case>.nrrd`` / ``<case>.nhdr`` / a DICOM folder
  ``<case>/`` beside it; or
* ``<case>_vertebrae.nii.gz`` (a vertebra label map, VerSe ids, L3 = 22; also ``.nii``,
  ``.nrrd``, ``.nhdr``) with the CT ``<case>.nii.gz`` (or another of the names above) beside it.

If a case has both, the ``.l3.json`` wins (it is an explicit annotation). A label whose CT is
missing is an error (:class:`~l3locator.errors.LabelError`); CT files without any label are
skipped and listed (a folder may be only partly annotated). Sub-folders without a label are
ignored (they may be outputs or caches); hidden files are ignored.

Truth per slice: 1 inside the labelled L3 range (inclusive, 0-based slice indices along the
volume's axial axis), 0 outside. A vertebra map without L3 gives a case with no L3 slice.

Patients: cases are the unit of splitting. Several scans of one patient can be kept on the
same side of every split by naming them ``<patient>__<scan>`` (double underscore): everything
before the first ``__`` is the patient (:func:`patient_of`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, LabelError
from ..labels import LABEL_SUFFIX, VERTEBRA_MAP_SUFFIX, l3_range_from_vertebra_map, read_label
from ..reading import load_ct
from ..volume import AXIS_NAMES, CTVolume

IMAGE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")
#: ``<case>`` + this + an image suffix is a vertebra label map (``VERTEBRA_MAP_SUFFIX`` is its NIfTI form).
VERTEBRA_MAP_STEM = VERTEBRA_MAP_SUFFIX[: -len(".nii.gz")]
PATIENT_SEPARATOR = "__"
LABEL_KINDS = ("json", "vertebra_map")


@dataclass(frozen=True)
class CaseSource:
    """Where one case's CT and label are (nothing is loaded)."""

    name: str
    image: Path
    label: Path
    label_kind: str  # one of LABEL_KINDS

    def __post_init__(self) -> None:
        if self.label_kind not in LABEL_KINDS:
            raise ValueError(f"label_kind must be one of {LABEL_KINDS}, got {self.label_kind!r}")

    @property
    def patient(self) -> str:
        return patient_of(self.name)


@dataclass(frozen=True)
class Discovery:
    """The cases of a folder, and the CT files skipped because they have no label."""

    cases: list[CaseSource]
    unlabelled: list[Path]


def patient_of(case_name: str) -> str:
    """The patient a case belongs to: the name up to the first ``__``, or the whole name."""
    return case_name.split(PATIENT_SEPARATOR, 1)[0] or case_name


def _strip_image_suffix(name: str) -> str | None:
    lower = name.lower()
    for suffix in IMAGE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return None


def _ct_beside(folder: Path, case: str) -> Path | None:
    """The CT of ``case`` in ``folder``: a file ``<case><suffix>`` or a folder ``<case>/``."""
    for suffix in IMAGE_SUFFIXES:
        candidate = folder / f"{case}{suffix}"
        if candidate.is_file():
            return candidate
    candidate = folder / case
    return candidate if candidate.is_dir() else None


def _ct_of_json_label(path: Path, case: str) -> Path | None:
    named = read_label(path).image
    if named:
        candidate = path.parent / named
        if candidate.exists():
            return candidate
    return _ct_beside(path.parent, case)


def discover_cases(folder: str | os.PathLike) -> Discovery:
    """List the cases of a training folder (sorted by name); see the module docstring.

    Raises:
        InputError: the folder does not exist or holds no labelled case.
        LabelError: a label has no CT beside it, or a label file is invalid.
    """
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"training folder not found: {root}")
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    cases: dict[str, CaseSource] = {}
    orphans: list[str] = []
    for path in entries:
        if path.is_file() and path.name.endswith(LABEL_SUFFIX):
            case = path.name[: -len(LABEL_SUFFIX)]
            image = _ct_of_json_label(path, case)
            if image is None:
                orphans.append(path.name)
            else:
                cases[case] = CaseSource(case, image, path, "json")
    for path in entries:
        stem = _strip_image_suffix(path.name) if path.is_file() else None
        if stem is not None and stem.endswith(VERTEBRA_MAP_STEM):
            case = stem[: -len(VERTEBRA_MAP_STEM)]
            if case in cases:
                continue
            image = _ct_beside(root, case)
            if image is None:
                orphans.append(path.name)
            else:
                cases[case] = CaseSource(case, image, path, "vertebra_map")
    if orphans:
        shown = ", ".join(orphans[:5]) + (f" and {len(orphans) - 5} more" if len(orphans) > 5 else "")
        raise LabelError(
            f"{len(orphans)} label(s) in {root} have no CT beside them ({shown}); expected <case>.nii.gz, "
            ".nii, .nrrd, .nhdr or a DICOM folder <case>/ (or the file named in the label's 'image' field)"
        )
    used = {c.image.resolve() for c in cases.values()} | {c.label.resolve() for c in cases.values()}
    unlabelled = [
        p for p in entries
        if p.is_file() and _strip_image_suffix(p.name) is not None and p.resolve() not in used
        and not _strip_image_suffix(p.name).endswith(VERTEBRA_MAP_STEM)
    ]
    if not cases:
        raise InputError(
            f"no labelled cases in {root}: expected <case>{LABEL_SUFFIX} or <case>{VERTEBRA_MAP_SUFFIX} "
            f"beside each CT ({len(unlabelled)} unlabelled CT file(s) found)"
        )
    return Discovery([cases[name] for name in sorted(cases)], unlabelled)


def geometry_volume(shape_kji: tuple[int, int, int], ijk_to_ras: np.ndarray) -> CTVolume:
    """A voxel-free stand-in :class:`CTVolume` (a broadcast zero) carrying only the geometry."""
    return CTVolume(np.broadcast_to(np.int16(0), tuple(int(n) for n in shape_kji)), np.asarray(ijk_to_ras))


def read_truth(source: CaseSource, geometry: CTVolume) -> tuple[int, int] | None:
    """The labelled L3 range ``(first, last)`` (inclusive slice indices) of a case, or None.

    Args:
        source: the case.
        geometry: its CT (or :func:`geometry_volume` of it): the label must fit its slice count,
            axial axis and, for a vertebra map, its voxel grid.

    Raises:
        LabelError: the label does not fit the CT.
    """
    axis_name = AXIS_NAMES[geometry.axial_axis]
    if source.label_kind == "json":
        label = read_label(source.label)
        if label.num_slices != geometry.num_slices or label.slice_axis != axis_name:
            raise LabelError(
                f"{source.label}: label is for {label.num_slices} slices along {label.slice_axis}, but the CT "
                f"{source.image.name} has {geometry.num_slices} along {axis_name}; was it made for another image?"
            )
        return label.l3_slice_range
    vertebrae = load_ct(source.label)
    if vertebrae.voxels.shape != geometry.voxels.shape or not np.allclose(vertebrae.ijk_to_ras, geometry.ijk_to_ras, atol=1e-2):
        raise LabelError(
            f"{source.label}: vertebra map grid {vertebrae.voxels.shape[::-1]} does not match the CT "
            f"{source.image.name} ({geometry.voxels.shape[::-1]} voxels, or a different position/orientation)"
        )
    return l3_range_from_vertebra_map(np.asarray(vertebrae.voxels), geometry.axial_axis)


def slice_targets(num_slices: int, l3_range: tuple[int, int] | None) -> np.ndarray:
    """Per-slice class (int64, 1 = L3 inside the inclusive range, 0 elsewhere)."""
    targets = np.zeros(num_slices, dtype=np.int64)
    if l3_range is not None:
        targets[l3_range[0] : l3_range[1] + 1] = 1
    return targets


def truth_index(l3_range: tuple[int, int]) -> float:
    """The true L3 slice of a case: the middle of its labelled range (may end in .5)."""
    return (l3_range[0] + l3_range[1]) / 2.0
