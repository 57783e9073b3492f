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

How much data there is: :func:`data_summary` counts cases, patients and slices (for provenance
and logs); :func:`folder_summary` gives a training UI those counts for a folder from the labels
alone, with the unlabelled CT files and every problem found (instead of stopping at the first);
:func:`training_blockers` says what keeps a set of cases from being trained on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..errors import InputError, LabelError
from ..labels import LABEL_SUFFIX, VERTEBRA_MAP_STEM, VERTEBRA_MAP_SUFFIX, annotation_kind, l3_range_from_vertebra_map, read_label
from ..reading import load_ct
from ..reading.formats import VOLUME_FILE_SUFFIXES, volume_file_stem
from ..volume import AXIS_NAMES, CTVolume

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


def _ct_beside(folder: Path, case: str) -> Path | None:
    """The CT of ``case`` in ``folder``: a file ``<case><suffix>`` or a folder ``<case>/``."""
    for suffix in VOLUME_FILE_SUFFIXES:
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


@dataclass(frozen=True)
class _Scan:
    """What a folder holds, before anything is judged an error."""

    cases: list[CaseSource]
    unlabelled: list[Path]
    orphans: list[str]  # file names of labels without a CT
    invalid: list[LabelError]  # label files that cannot be read


def _scan(root: Path) -> _Scan:
    entries = sorted(p for p in root.iterdir() if not p.name.startswith("."))
    cases: dict[str, CaseSource] = {}
    orphans: list[str] = []
    invalid: list[LabelError] = []
    for path in entries:
        if path.is_file() and path.name.endswith(LABEL_SUFFIX):
            case = path.name[: -len(LABEL_SUFFIX)]
            try:
                image = _ct_of_json_label(path, case)
            except LabelError as exc:
                invalid.append(exc)
                continue
            if image is None:
                orphans.append(path.name)
            else:
                cases[case] = CaseSource(case, image, path, "json")
    for path in entries:
        stem = volume_file_stem(path.name) if path.is_file() else None
        if stem is not None and stem.endswith(VERTEBRA_MAP_STEM):
            case = stem[: -len(VERTEBRA_MAP_STEM)]
            if case in cases:
                continue
            image = _ct_beside(root, case)
            if image is None:
                orphans.append(path.name)
            else:
                cases[case] = CaseSource(case, image, path, "vertebra_map")
    used = {c.image.resolve() for c in cases.values()} | {c.label.resolve() for c in cases.values()}
    unlabelled = [
        p for p in entries
        if p.is_file() and volume_file_stem(p.name) is not None and p.resolve() not in used and annotation_kind(p) is None
    ]
    return _Scan([cases[name] for name in sorted(cases)], unlabelled, orphans, invalid)


def _orphans_message(root: Path, orphans: list[str]) -> str:
    shown = ", ".join(orphans[:5]) + (f" and {len(orphans) - 5} more" if len(orphans) > 5 else "")
    return (
        f"{len(orphans)} label(s) in {root} have no CT beside them ({shown}); expected <case>.nii.gz, "
        ".nii, .nrrd, .nhdr or a DICOM folder <case>/ (or the file named in the label's 'image' field)"
    )


def _no_cases_message(root: Path, unlabelled: int) -> str:
    return (
        f"no labelled cases in {root}: expected <case>{LABEL_SUFFIX} or <case>{VERTEBRA_MAP_SUFFIX} "
        f"beside each CT ({unlabelled} unlabelled CT file(s) found)"
    )


def _training_folder(folder: str | os.PathLike) -> Path:
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"training folder not found: {root}")
    return root


def discover_cases(folder: str | os.PathLike) -> Discovery:
    """List the cases of a training folder (sorted by name); see the module docstring.

    Raises:
        InputError: the folder does not exist or holds no labelled case.
        LabelError: a label has no CT beside it, or a label file is invalid.
    """
    root = _training_folder(folder)
    scan = _scan(root)
    if scan.invalid:
        raise scan.invalid[0]
    if scan.orphans:
        raise LabelError(_orphans_message(root, scan.orphans))
    if not scan.cases:
        raise InputError(_no_cases_message(root, len(scan.unlabelled)))
    return Discovery(scan.cases, scan.unlabelled)


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
    return _l3_range_of_map(vertebrae)


def _l3_range_of_map(vertebrae: CTVolume) -> tuple[int, int] | None:
    return l3_range_from_vertebra_map(np.asarray(vertebrae.voxels), vertebrae.axial_axis)


def slice_targets(num_slices: int, l3_range: tuple[int, int] | None) -> np.ndarray:
    """Per-slice class (int64, 1 = L3 inside the inclusive range, 0 elsewhere)."""
    targets = np.zeros(num_slices, dtype=np.int64)
    if l3_range is not None:
        targets[l3_range[0] : l3_range[1] + 1] = 1
    return targets


def truth_index(l3_range: tuple[int, int]) -> float:
    """The true L3 slice of a case: the middle of its labelled range (may end in .5)."""
    return (l3_range[0] + l3_range[1]) / 2.0


# --- how much training data there is -------------------------------------------------------------

#: Training needs cases from at least this many patients (one to train on, one to validate on).
MIN_PATIENTS = 2


class CaseWithTruth(Protocol):
    """What :func:`data_summary` counts: a case's patient, slice count and labelled L3 range."""

    @property
    def patient(self) -> str: ...
    @property
    def num_slices(self) -> int: ...
    @property
    def l3_range(self) -> tuple[int, int] | None: ...


@dataclass(frozen=True)
class CaseTruth:
    """A case's slice count and labelled L3 range, read from its label alone (the CT is not read)."""

    name: str
    patient: str
    num_slices: int
    l3_range: tuple[int, int] | None


def label_truth(source: CaseSource) -> CaseTruth:
    """Slice count and L3 range of ``source`` from its label: an ``.l3.json`` states both; a
    vertebra map is read (its own slice count; it must share the CT's grid, which training checks).

    Raises:
        LabelError: the label file is invalid.
        InputError: the vertebra map cannot be read.
    """
    if source.label_kind == "json":
        label = read_label(source.label)
        return CaseTruth(source.name, source.patient, label.num_slices, label.l3_slice_range)
    vertebrae = load_ct(source.label)
    return CaseTruth(source.name, source.patient, vertebrae.num_slices, _l3_range_of_map(vertebrae))


def _l3_slice_count(l3_range: tuple[int, int] | None) -> int:
    return 0 if l3_range is None else l3_range[1] - l3_range[0] + 1


def data_summary(cases: Sequence[CaseWithTruth]) -> dict[str, int]:
    """Counts of a set of cases (for provenance, logs and the training UI): ``cases``,
    ``patients``, ``cases_with_l3``, ``cases_without_l3``, ``slices`` (all axial slices),
    ``l3_slices`` (inside the labelled L3 ranges) and ``other_slices``."""
    slices = int(sum(c.num_slices for c in cases))
    l3_slices = int(sum(_l3_slice_count(c.l3_range) for c in cases))
    without_l3 = sum(1 for c in cases if c.l3_range is None)
    return {
        "cases": len(cases),
        "patients": len({c.patient for c in cases}),
        "cases_with_l3": len(cases) - without_l3,
        "cases_without_l3": without_l3,
        "slices": slices,
        "l3_slices": l3_slices,
        "other_slices": slices - l3_slices,
    }


def training_blockers(summary: dict[str, int], folds: int = 0) -> list[str]:
    """Why cases with this :func:`data_summary` cannot be trained on (empty when they can).

    ``folds``: the cross-validation folds asked for (each needs a patient of its own).
    """
    blockers = []
    needed = max(MIN_PATIENTS, folds)
    if summary["patients"] < needed:
        reason = f" (and at least as many as --folds {folds})" if folds > MIN_PATIENTS else ""
        blockers.append(f"{summary['patients']} patient(s): training needs at least {MIN_PATIENTS}{reason}")
    if summary["l3_slices"] == 0:
        blockers.append("no case has a labelled L3: nothing to learn")
    return blockers


def folder_summary(folder: str | os.PathLike) -> dict[str, Any]:
    """Everything a training UI shows about a folder, from the labels alone (no CT is read).

    Returns :func:`data_summary` of the cases whose label could be read, plus
    ``unlabelled_files`` (names of CT files without a label, which training skips) and
    ``problems`` (one sentence each: labels without a CT, unreadable labels, and what keeps
    the folder from being trained on; empty when training can start). A label that does not
    fit its CT is only found when training reads the CT.

    Raises:
        InputError: ``folder`` is not a folder.
    """
    root = _training_folder(folder)
    scan = _scan(root)
    problems = [str(error) for error in scan.invalid]
    if scan.orphans:
        problems.append(_orphans_message(root, scan.orphans))
    truths = []
    for source in scan.cases:
        try:
            truths.append(label_truth(source))
        except (LabelError, InputError) as exc:
            problems.append(f"{source.name}: {exc}")
    summary = data_summary(truths)
    if not scan.cases:
        problems.append(_no_cases_message(root, len(scan.unlabelled)))
    else:
        problems += training_blockers(summary)
    return {**summary, "unlabelled_files": [p.name for p in scan.unlabelled], "problems": problems}
