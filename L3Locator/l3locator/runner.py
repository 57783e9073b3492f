"""Run L3 finding over scans: which scans, under which output names, one CSV row each.

The one runner behind ``l3locator find``, ``l3locator batch`` and ``L3LocatorBatch.py``:

1. :func:`prepare_run` checks what a run shares before any scan is read (the output folder, the
   device, the model) and returns the :class:`RunSettings` (``find`` reads its one scan
   meanwhile, after the output folder's check: :class:`BackgroundRead`; nothing is written
   before the checks pass);
2. :func:`expand_inputs` turns the paths given into scans: a folder that is not a DICOM folder
   stands for its entries; label files (``.l3.json``, ``*_vertebrae.nii.gz``) are not scans;
3. :func:`output_names` names each scan's output files (:mod:`l3locator.outputs`);
4. :func:`find_in_scan` reads one scan, finds L3, measures body composition there when asked
   (:class:`BodyCompositionOptions`) and writes its outputs; :func:`run_batch` does so for
   many, one CSV row each whatever goes wrong with a scan, and writes the CSV even when
   interrupted.

Output names: a scan's *case name* is its file name without the image suffix, or its folder's
name for a DICOM folder; one longer than :data:`MAX_CASE_NAME_BYTES` (UTF-8) keeps its start and
ends in ``_`` plus 8 hex digits of a hash of the whole name. The output name is the case name
under the scan's folder relative to the deepest folder that holds all the run's scans, so
``patA/ct.nii.gz`` and ``patB/ct.nii.gz`` give ``patA/ct`` and ``patB/ct`` (files
``patA/ct_L3.json`` ...), while scans of one folder, and a single scan, give the plain case name.
Scans that would still share a name (``ct.nii.gz`` beside ``ct.nrrd``) each get ``_`` plus
8 hex digits of a hash of their resolved path appended.
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError, L3LocatorError
from .labels import annotation_kind
from .outputs import OUTPUT_KINDS, check_output_file, check_output_folder, csv_row, write_csv, write_scan_outputs
from .reading.formats import DICOM_FILE_SUFFIXES, is_dicom_folder, volume_file_stem

if TYPE_CHECKING:
    import torch

    from .body_composition import BodyComposition
    from .modelfile import L3Model
    from .pipeline import L3Result
    from .volume import CTVolume

#: Exit status of a run: all scans done (a scan without L3 is a result, not a failure); some
#: scans of a batch failed (their CSV rows say why); bad arguments, model or output location.
EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_INPUT = 0, 1, 2
#: Longest case name kept whole, in UTF-8 bytes: room for the output suffixes and the atomic
#: writer's temporary names within the usual 255-byte limit of a file name.
MAX_CASE_NAME_BYTES = 150

#: Receives the runner's lines for people (progress, notes, tracebacks of unexpected errors).
Log = Callable[[str], None]


def _short_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:8]


def case_name(path: str | os.PathLike) -> str:
    """A scan's name for its output files: the file name without its image suffix, or the folder
    name, shortened beyond :data:`MAX_CASE_NAME_BYTES` (see the module docstring)."""
    name = Path(os.path.abspath(path)).name
    stem = volume_file_stem(name)
    if stem is None and name.lower().endswith(DICOM_FILE_SUFFIXES):
        stem = name[: name.rindex(".")]
    name = (stem if stem is not None else name) or "scan"
    encoded = name.encode("utf-8", "surrogateescape")
    if len(encoded) <= MAX_CASE_NAME_BYTES:
        return name
    head = encoded[: MAX_CASE_NAME_BYTES - 9].decode("utf-8", "ignore")  # never half a character
    return f"{head}_{_short_hash(name)}"


@dataclass(frozen=True)
class Inputs:
    """The scans a run's paths stand for, and what was left out with why."""

    scans: list[Path]
    skipped: list[tuple[Path, str]]

    def skip_notes(self) -> list[str]:
        """One line per reason for the skipped paths (at most three names each, then a count)."""
        by_reason: dict[str, list[Path]] = {}
        for path, reason in self.skipped:
            by_reason.setdefault(reason, []).append(path)
        notes = []
        for reason, paths in by_reason.items():
            names = ", ".join(str(path) for path in paths[:3]) + (f" and {len(paths) - 3} more" if len(paths) > 3 else "")
            notes.append(f"skipping {len(paths)} {'file' if len(paths) == 1 else 'files'} ({reason}): {names}")
        return notes


def expand_inputs(paths: Sequence[str | os.PathLike]) -> Inputs:
    """The scans named by ``paths``, in order.

    A folder that is not a DICOM folder stands for its entries (sorted; hidden ones ignored):
    volume files (:data:`~l3locator.reading.formats.VOLUME_FILE_SUFFIXES`) and sub-folders; other files are skipped. A folder
    that gives no scan stays a scan itself (its row then says why it cannot be read). Label files
    (:func:`~l3locator.labels.annotation_kind`), named or found in a folder, are skipped: they are not CT. Any other
    path, even a missing one or an unknown type, is a scan whose row will carry the reason.
    """
    scans: list[Path] = []
    skipped: list[tuple[Path, str]] = []
    for item in paths:
        path = Path(item)
        kind = annotation_kind(path)
        if kind is not None and not path.is_dir():
            skipped.append((path, f"{kind}s, not scans"))
            continue
        entries = _folder_entries(path)
        if entries is None:
            scans.append(path)
            continue
        found = []
        for entry in entries:
            kind = annotation_kind(entry)
            if kind is not None and not entry.is_dir():
                skipped.append((entry, f"{kind}s, not scans"))
            elif entry.is_dir() or volume_file_stem(entry.name) is not None:
                found.append(entry)
            else:
                skipped.append((entry, "not a NIfTI/NRRD file or a folder"))
        scans.extend(found or [path])
    return Inputs(scans, skipped)


def _folder_entries(path: Path) -> list[Path] | None:
    """The visible entries of ``path`` if it is a folder of scans; None if it is a scan itself
    (a file, a DICOM folder, a missing path, or a folder that cannot be listed: its row says why)."""
    try:
        if not path.is_dir() or is_dicom_folder(path):
            return None
        return sorted(entry for entry in path.iterdir() if not entry.name.startswith("."))
    except OSError:
        return None


def output_names(scans: Sequence[str | os.PathLike]) -> list[str]:
    """Unique output names (``/``-separated, relative) for the scans of one run; see the module
    docstring. The same scan listed twice gets the same name."""
    absolute = [Path(os.path.abspath(scan)) for scan in scans]
    try:
        common = Path(os.path.commonpath([path.parent for path in absolute])) if absolute else None
    except ValueError:  # different drives (Windows): mirror each scan's folder from its drive down
        common = None
    names = []
    for path in absolute:
        folder = path.parent.relative_to(common) if common is not None else Path(*path.parent.parts[1:])
        names.append((folder / case_name(path)).as_posix())
    holders: dict[str, set[Path]] = {}
    for name, path in zip(names, absolute):
        holders.setdefault(name.casefold(), set()).add(path.resolve())
    return [
        f"{name}_{_short_hash(str(path.resolve()))}" if len(holders[name.casefold()]) > 1 else name
        for name, path in zip(names, absolute)
    ]


@dataclass(frozen=True)
class BodyCompositionOptions:
    """Measure body composition on each scan's L3 slice (:mod:`l3locator.body_composition`).

    Attributes:
        half_width_mm: > 0: the mean over the slices within +- this many mm of L3.
        height_m: the patients' height in metres for the SMI, for every scan of the run; None:
            each scan's DICOM Patient's Size where it has one.
    """

    half_width_mm: float = 0.0
    height_m: float | None = None


#: The most a body-composition half-width may be (mm): L3 itself is about 25-35 mm high.
MAX_HALF_WIDTH_MM = 50.0


def body_composition_options(height_m: str | float | None = None, half_width_mm: str | float = 0.0, *,
                             height_option: str = "--height-m", half_width_option: str = "--bc-half-width-mm") -> BodyCompositionOptions:
    """Checked :class:`BodyCompositionOptions` from command-line values (text or numbers).

    Raises:
        InputError: a height that is not metres (:func:`l3locator.body_composition.check_height_m`)
            or a half-width that is not 0-:data:`MAX_HALF_WIDTH_MM` mm; the message names the option.
    """
    from .body_composition import check_height_m

    height = None
    if height_m is not None:
        try:
            height = check_height_m(height_m)
        except ValueError as error:
            raise InputError(f"{height_option} {height_m}: {error}") from None
    try:
        half_width = float(half_width_mm)
    except (TypeError, ValueError):
        raise InputError(f"{half_width_option} {half_width_mm}: not a number of mm") from None
    if not 0.0 <= half_width <= MAX_HALF_WIDTH_MM:
        raise InputError(f"{half_width_option} {half_width_mm}: must be between 0 and {MAX_HALF_WIDTH_MM:g} mm")
    return BodyCompositionOptions(half_width, height)


@dataclass(frozen=True)
class RunSettings:
    """What all scans of a run share (made by :func:`prepare_run`, which checked it)."""

    model: L3Model
    device: torch.device
    output_dir: Path | None = None
    output_kinds: tuple[str, ...] = OUTPUT_KINDS
    exhaustive: bool = False
    body_composition: BodyCompositionOptions | None = None


def prepare_run(
    model: L3Model | str | os.PathLike | None = None,
    device: str | None = None,
    output_dir: str | os.PathLike | None = None,
    *,
    output_kinds: Sequence[str] = OUTPUT_KINDS,
    exhaustive: bool = False,
    output_dir_option: str = "--output-dir",
    body_composition: BodyCompositionOptions | None = None,
) -> RunSettings:
    """Check the output folder, the device and the model (cheapest first) and load the model.

    ``model``: an :class:`L3Model`, a model file, or None for the shipped model. ``device``:
    ``"cpu"``, ``"cuda"``..., None for CUDA when present. ``output_dir``: where each scan's
    files of ``output_kinds`` go (None: none written). ``exhaustive``: score every slice.
    ``body_composition``: also measure body composition on each L3 slice (checked options,
    :func:`body_composition_options`); None: don't.

    Raises:
        L3LocatorError: the output folder cannot be written (the message names
            ``output_dir_option``), the device does not exist here, or the model file is bad.
    """
    from .engine import pick_device
    from .modelfile import L3Model, load_model

    folder = check_output_folder(output_dir, output_dir_option) if output_dir is not None else None
    chosen = pick_device(device)
    l3model = model if isinstance(model, L3Model) else load_model(model)
    return RunSettings(l3model, chosen, folder, tuple(output_kinds), exhaustive, body_composition)


def measure_at_l3(volume: CTVolume, result: L3Result, options: BodyCompositionOptions) -> BodyComposition | None:
    """Body composition on the L3 slice of ``result``, recorded in the result as
    ``extra["body_composition"]`` (:meth:`BodyComposition.to_dict`); when no L3 was found, that
    is None and the result's warnings say so. Returns the measurement, or None."""
    from .body_composition import measure_body_composition

    if not result.l3_found or result.l3_slice_index is None:
        result.extra["body_composition"] = None
        result.warnings.append("body composition not measured: no L3 found")
        return None
    composition = measure_body_composition(volume, result.l3_slice_index, half_width_mm=options.half_width_mm, height_m=options.height_m)
    result.extra["body_composition"] = composition.to_dict()
    return composition


class BackgroundRead:
    """One scan being read in a background thread, begun at construction.

    Reading a scan needs neither torch nor the model, and decompressing and decoding it run
    mostly outside Python's global interpreter lock, so reading it while :func:`prepare_run`
    imports torch and loads the model hides most of the reading (about 0.6 s of a cold
    ``l3locator find`` on a 500-slice NIfTI, ``bench/results/speed.md``). The thread is a daemon:
    a run that stops early (a bad model file) does not wait for it. Give the object to
    :func:`find_in_scan` in place of the path.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        from .reading import load_ct  # imported here, before the thread: imports stay in one thread

        self.path = path
        self.started = time.perf_counter()
        self._volume: CTVolume | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._read, args=(load_ct,), name="l3locator-read", daemon=True)
        self._thread.start()

    def _read(self, load_ct: Callable[[str | os.PathLike], CTVolume]) -> None:
        try:
            self._volume = load_ct(self.path)
        except BaseException as exc:  # handed to the caller of volume(), in its thread
            self._error = exc

    def volume(self) -> CTVolume:
        """The scan, once read (waits for the thread).

        Raises:
            L3LocatorError: the scan cannot be read (what reading it directly would raise).
        """
        self._thread.join()
        if self._error is not None:
            raise self._error
        assert self._volume is not None
        return self._volume


def find_in_scan(scan: str | os.PathLike | BackgroundRead, settings: RunSettings, output_name: str | None = None) -> tuple[L3Result, dict[str, str]]:
    """Read ``scan`` (or take it from its :class:`BackgroundRead`), find L3 (and measure body
    composition there when the settings ask), and write its outputs (under ``output_name``,
    default its case name) into ``settings.output_dir``; returns the result and
    ``{kind: path}`` written. The result's ``seconds`` count from the start of the reading.

    Raises:
        L3LocatorError: the scan cannot be used; OSError: an output cannot be written.
    """
    from .pipeline import read_and_find_l3

    if isinstance(scan, BackgroundRead):
        volume, result = read_and_find_l3(scan.volume(), settings.model, device=settings.device, exhaustive=settings.exhaustive)
        result = replace(result, input=os.fspath(scan.path), seconds=time.perf_counter() - scan.started)
        scan = scan.path
    else:
        volume, result = read_and_find_l3(scan, settings.model, device=settings.device, exhaustive=settings.exhaustive)
    composition = measure_at_l3(volume, result, settings.body_composition) if settings.body_composition is not None else None
    if settings.output_dir is None:
        return result, {}
    name = output_name if output_name is not None else case_name(scan)
    return result, write_scan_outputs(settings.output_dir, name, volume, result, settings.output_kinds, composition)


def one_line(error: BaseException, *, with_type: bool = False) -> str:
    """An exception's message as one line (its type's name when it has none), led by the type's
    name when ``with_type`` (for unexpected exceptions, whose type tells what went wrong)."""
    message = " ".join(str(error).split()) or type(error).__name__
    return f"{type(error).__name__}: {message}" if with_type else message


@dataclass(frozen=True)
class BatchSummary:
    """How a batch went: scans run, scans failed, and the CSV written."""

    scans: int
    failed: int
    csv: Path

    @property
    def exit_status(self) -> int:
        return EXIT_SOME_FAILED if self.failed else EXIT_OK

    def line(self) -> str:
        return f"{self.scans - self.failed} of {self.scans} scans done, {self.failed} failed; results in {self.csv}"


def run_batch(scans: Sequence[str | os.PathLike], settings: RunSettings, csv_path: str | os.PathLike, log: Log) -> BatchSummary:
    """Find L3 in each scan (outputs under :func:`output_names`) and write one CSV row per scan.

    A scan that fails, for whatever reason, gets a row with ``status`` ``"error"`` and the
    reason, and the batch goes on; an unexpected exception (not an :class:`L3LocatorError` or
    ``OSError``: a bug, or an input nobody foresaw) also logs its traceback. The CSV is written
    atomically at the end, and with the rows done so far if the batch is interrupted. Progress
    goes to ``log``, one line per scan.
    """
    names = output_names(scans)
    rows: list[dict[str, object]] = []
    failed = 0
    started = time.perf_counter()
    try:
        for number, (scan, name) in enumerate(zip(scans, names), start=1):
            try:
                result, outputs = find_in_scan(scan, settings, name)
                row = csv_row(str(scan), result, outputs)
            except Exception as exc:  # one bad scan must not stop the batch: its row carries the reason
                expected = isinstance(exc, (L3LocatorError, OSError))
                if not expected:
                    log(traceback.format_exc().rstrip())
                failed += 1
                row = csv_row(str(scan), error=one_line(exc, with_type=not expected))
            rows.append(row)
            eta = (time.perf_counter() - started) / number * (len(scans) - number)
            error = f": {row['error']}" if row["error"] else ""
            log(f"[{number}/{len(scans)}] {row['status']:5s} {scan}{error}  (ETA {eta:.0f} s)")
    finally:
        written = write_csv(csv_path, rows)
    return BatchSummary(len(scans), failed, written)


def run_batch_command(paths: Sequence[str | os.PathLike], csv_path: str | os.PathLike, log: Log, *,
                      csv_option: str = "--output", **run_options: Any) -> int:
    """A whole batch as a command runs it: check the CSV location (the option named
    ``csv_option``), expand the paths and :func:`prepare_run` (``run_options``: its arguments,
    by keyword) before any scan is read, log one note per reason for what is skipped,
    run, and log the summary. Returns the exit status (:data:`EXIT_OK` or :data:`EXIT_SOME_FAILED`).

    Raises:
        L3LocatorError: bad arguments, output location, device or model, or every input was
            skipped (nothing was run).
    """
    check_output_file(csv_path, csv_option)
    inputs = expand_inputs(paths)
    if not inputs.scans:
        raise InputError(f"no scan to run among the inputs: {'; '.join(inputs.skip_notes())}")
    settings = prepare_run(**run_options)
    for note in inputs.skip_notes():
        log(note)
    summary = run_batch(inputs.scans, settings, csv_path, log)
    log(summary.line())
    return summary.exit_status
