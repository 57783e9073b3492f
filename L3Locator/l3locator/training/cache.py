"""Preprocessed slices on disk, so training never holds all volumes in memory.

Each case's CT is read once and run through :func:`~l3locator.preprocessing.preprocess_volume`
(steps 1–4 of the one shared preprocessing); the result ``[num_slices, size, size]`` is stored
as float16 ``.npy`` (values in [0, 1], so the rounding error is below 5e-4) and memory-mapped
while training. Channels (step 5) are assembled per batch from the stored slices.

Cache files live in one folder, named by a hash of what they depend on, so a changed input or
setting is simply a miss:

* ``<image key>.geometry.json``: voxel shape and ``ijk_to_ras`` of the CT;
  key = CT path + size + modification time (of every file, for a DICOM folder).
* ``<image key>-<settings key>.npy``: the slices; settings key = the preprocessing settings
  that steps 0–4 use (not the channel mode).
* ``<image key>-<label key>.truth.json``: the L3 range read from a vertebra map (JSON labels are
  cheap and are re-read every time, so a corrected label is seen at once).

Writes are atomic (:func:`~l3locator.atomic.write_atomically`; JSON through :mod:`.strict_json`).
Nothing is ever deleted; remove the folder to reclaim space.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..atomic import write_atomically
from ..choices import CACHE_FOLDER
from ..preprocessing import PreprocessingConfig, preprocess_volume
from ..reading import load_ct
from ..volume import CTVolume
from .dataset import CaseSource, geometry_volume, read_truth, slice_targets
from .strict_json import write_json

CACHE_VERSION = 1
#: Names the rule that derives the L3 range from a label map (labels.l3_range_from_vertebra_map);
#: a new rule gets a new name so cached ranges from the old one are not reused.
TRUTH_RULE = "majority"
#: Preprocessing settings that change the stored slices (steps 1–4).
SLICE_SETTINGS = ("hu_min", "hu_max", "stretch_low_percentile", "stretch_high_percentile", "stretch", "input_size",
                  "spine_field_mm")
#: Settings added later that change the stored slices: part of the key only when set, so the
#: caches of models without them keep their keys.
LATER_SLICE_SETTINGS = ("stretch_min_white_hu",)


@dataclass(frozen=True)
class PreparedCase:
    """A case ready for training: geometry, truth and the path of its cached slices."""

    name: str
    patient: str
    image: str
    num_slices: int
    slice_thickness_mm: float
    superior_step: int
    l3_range: tuple[int, int] | None
    slices_file: Path

    def slices(self) -> np.ndarray:
        """Memory-mapped float16 ``[num_slices, size, size]`` (copy-on-write: never written back)."""
        return np.load(self.slices_file, mmap_mode="c")

    def targets(self) -> np.ndarray:
        """Per-slice class, int64 (1 = L3)."""
        return slice_targets(self.num_slices, self.l3_range)


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True).encode()).hexdigest()[:24]


def _file_stamp(path: Path) -> list[object]:
    stat = path.stat()
    return [path.name, stat.st_size, stat.st_mtime_ns]


def input_key(path: Path) -> str:
    """Hash of a file's (or a DICOM folder's files') resolved path, sizes and modification times."""
    path = path.resolve()
    if path.is_dir():
        stamps = [_file_stamp(p) for p in sorted(path.iterdir()) if p.is_file()]
    else:
        stamps = [_file_stamp(path)]
    return _digest([CACHE_VERSION, str(path), stamps])


def settings_key(config: PreprocessingConfig) -> str:
    """Hash of the preprocessing settings that the stored slices depend on."""
    values = config.to_dict()
    key = {name: values[name] for name in SLICE_SETTINGS}
    key.update({name: values[name] for name in LATER_SLICE_SETTINGS if values[name] is not None})
    return _digest([CACHE_VERSION, key])


def _write_npy(path: Path, array: np.ndarray) -> None:
    def write(tmp: str) -> None:
        with open(tmp, "wb") as handle:
            np.save(handle, array)

    write_atomically(path, write)


def _geometry(volume: CTVolume) -> dict:
    return {"shape_kji": list(volume.voxels.shape), "ijk_to_ras": volume.ijk_to_ras.tolist()}


def prepare_case(source: CaseSource, config: PreprocessingConfig, cache_dir: str | os.PathLike) -> PreparedCase:
    """Make sure ``source``'s slices and truth are cached; read the CT only on a miss.

    Raises:
        InputError: the CT cannot be read.
        LabelError: the label does not fit the CT.
    """
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    image_key = input_key(source.image)
    geometry_file = cache / f"{image_key}.geometry.json"
    slices_file = cache / f"{image_key}-{settings_key(config)}.npy"
    volume: CTVolume | None = None
    if not (geometry_file.is_file() and slices_file.is_file()):
        volume = load_ct(source.image)
        _write_npy(slices_file, preprocess_volume(volume, config).numpy().astype(np.float16))
        write_json(geometry_file, _geometry(volume))
    stored = json.loads(geometry_file.read_text(encoding="utf-8"))
    geometry = geometry_volume(tuple(stored["shape_kji"]), np.asarray(stored["ijk_to_ras"]))

    if source.label_kind == "json":
        l3_range = read_truth(source, geometry)
    else:
        truth_file = cache / f"{image_key}-{input_key(source.label)}-{TRUTH_RULE}.truth.json"
        if truth_file.is_file():
            found = json.loads(truth_file.read_text(encoding="utf-8"))["l3_range"]
            l3_range = tuple(found) if found is not None else None
        else:
            l3_range = read_truth(source, geometry)
            write_json(truth_file, {"l3_range": list(l3_range) if l3_range is not None else None})
    return PreparedCase(
        name=source.name,
        patient=source.patient,
        image=str(source.image),
        num_slices=geometry.num_slices,
        slice_thickness_mm=geometry.slice_thickness,
        superior_step=geometry.superior_step,
        l3_range=l3_range,
        slices_file=slices_file,
    )


def prepare_cases(
    sources: list[CaseSource],
    config: PreprocessingConfig,
    cache_dir: str | os.PathLike,
    progress: Callable[[int, int, str], None] | None = None,
) -> list[PreparedCase]:
    """:func:`prepare_case` for each source, one CT in memory at a time.

    ``progress(done, total, case_name)`` is called after each case.
    """
    prepared = []
    for number, source in enumerate(sources, start=1):
        prepared.append(prepare_case(source, config, cache_dir))
        if progress is not None:
            progress(number, len(sources), source.name)
    return prepared

