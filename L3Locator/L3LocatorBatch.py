"""Find L3 in many CT scans without the GUI: one CSV row per scan, one markups file per L3 found.

Inside 3D Slicer (scans are read with Slicer's own loaders)::

    Slicer --no-main-window --python-script L3LocatorBatch.py \\
        --input SCAN [SCAN ...] --output results.csv [--model FILE] [--markups-dir DIR] [--device cpu|cuda]

Under plain Python with the ``slicer-core`` wheel (files are read with Slicer's volumes logic,
DICOM folders with the core library's reader)::

    python L3LocatorBatch.py --input SCAN [SCAN ...] --output results.csv [...]

A SCAN is a NIfTI (.nii, .nii.gz) or NRRD (.nrrd, .nhdr) file, a DICOM folder (a folder with
DICOM files in it), or a folder of such scans (each entry one scan). Both ways run the module's
scene logic (``L3LocatorLib.logic.L3LocatorSceneLogic``, which the L3Locator module's logic is
built on) and write the same CSV columns as ``l3locator batch`` plus ``markups``. Failed scans get
a row with their error. Exit status: 0 all scans done; 1 some failed; 2 bad arguments or model.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
import traceback
from pathlib import Path

SCRIPT_DIRECTORY = Path(globals().get("__file__") or sys.argv[0]).resolve().parent
if str(SCRIPT_DIRECTORY) not in sys.path:  # plain Python: find L3LocatorLib and l3locator beside this script
    sys.path.insert(0, str(SCRIPT_DIRECTORY))

import vtk  # noqa: E402

import slicer  # noqa: E402

from L3LocatorLib.files import safeFileName  # noqa: E402
from L3LocatorLib.headless import createHeadlessScene, runningInSlicerApplication  # noqa: E402
from L3LocatorLib.logic import L3LocatorSceneLogic  # noqa: E402
from L3LocatorLib.volumes import addVolumeNodeFromCTVolume  # noqa: E402

EXIT_OK, EXIT_SOME_FAILED, EXIT_BAD_ARGUMENTS = 0, 1, 2
VOLUME_FILE_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")
DICOM_FILE_SUFFIXES = (".dcm", ".dicom", ".ima")
#: ``AddArchetypeVolume`` loading option: read this one file only, not a numbered series.
SINGLE_FILE = 4


def isDicomFolder(folder: Path) -> bool:
    """A folder holding DICOM files directly (by suffix or by the ``DICM`` preamble)."""
    for path in folder.iterdir():
        if path.is_file() and not path.name.startswith("."):
            if path.name.lower().endswith(DICOM_FILE_SUFFIXES):
                return True
            try:
                with open(path, "rb") as handle:
                    handle.seek(128)
                    if handle.read(4) == b"DICM":
                        return True
            except OSError:
                continue
    return False


def expandInputs(inputs: list[str]) -> list[str]:
    """The scans named by ``inputs``: a folder that is not a DICOM folder stands for its entries
    (volume files and sub-folders; other files are skipped with a note on stderr)."""
    scans = []
    for item in inputs:
        path = Path(item)
        if path.is_dir() and not isDicomFolder(path):
            entries = sorted(p for p in path.iterdir() if not p.name.startswith("."))
            for entry in entries:
                if entry.is_dir() or entry.name.lower().endswith(VOLUME_FILE_SUFFIXES):
                    scans.append(str(entry))
                else:
                    print(f"L3LocatorBatch: skipping {entry} (not a NIfTI/NRRD file or a folder)", file=sys.stderr)
            if not entries:
                scans.append(str(path))  # an empty folder is a failed scan, not nothing
        else:
            scans.append(item)
    return scans


def caseName(path: str) -> str:
    """File-safe name of a scan: its file name without the image suffix, or the folder name."""
    name = Path(path).resolve().name
    for suffix in VOLUME_FILE_SUFFIXES:
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return safeFileName(name, fallback="scan")


class ScanLoader:
    """Loads one scan into ``slicer.mrmlScene`` as a scalar volume node."""

    def __init__(self, headless=None) -> None:
        self.headless = headless  # the HeadlessScene under plain Python, None inside Slicer

    def load(self, path: str):
        from l3locator import InputError

        scan = Path(path)
        if not scan.exists():
            raise InputError(f"no such file or folder: {scan}")
        if scan.is_dir():
            return self.loadDicomFolder(scan)
        if not scan.name.lower().endswith(VOLUME_FILE_SUFFIXES):
            raise InputError(f"unsupported file type: {scan} (expected .nii, .nii.gz, .nrrd, .nhdr or a DICOM folder)")
        return self.loadVolumeFile(scan)

    def loadVolumeFile(self, path: Path):
        from l3locator import InputError

        name = caseName(str(path))
        if self.headless is None:
            try:
                return slicer.util.loadVolume(str(path), {"name": name, "singleFile": True, "show": False})
            except RuntimeError as exc:
                raise InputError(f"Slicer could not read {path}: {str(exc).splitlines()[0]}") from exc
        messages = slicer.vtkMRMLMessageCollection()
        vtk.vtkObject.GlobalWarningDisplayOff()  # the reasons go to ``messages``; keep stderr readable
        try:
            volumeNode = self.headless.volumesLogic.AddArchetypeVolume(str(path), name, SINGLE_FILE, vtk.vtkStringArray(), messages)
        finally:
            vtk.vtkObject.GlobalWarningDisplayOn()
        if volumeNode is None:
            texts = [messages.GetNthMessageText(i) for i in range(messages.GetNumberOfMessages())]
            reasons = [text for text in texts if text.startswith("Cannot read")] or texts  # the last is the plain scalar reader's
            raise InputError(f"Slicer could not read {path} as a volume" + (f" ({reasons[-1].splitlines()[0]})" if reasons else ""))
        return volumeNode

    def loadDicomFolder(self, folder: Path):
        from l3locator import InputError

        if self.headless is not None:
            from l3locator.reading import load_ct

            return addVolumeNodeFromCTVolume(load_ct(folder), caseName(str(folder)))
        from DICOMLib import DICOMUtils

        with DICOMUtils.TemporaryDICOMDatabase() as database:
            DICOMUtils.importDicom(str(folder), database)
            nodeIDs = []
            for patientUID in database.patients():
                nodeIDs.extend(DICOMUtils.loadPatientByUID(patientUID) or [])
        nodes = [slicer.mrmlScene.GetNodeByID(nodeID) for nodeID in nodeIDs]
        volumes = [n for n in nodes if n is not None and n.IsA("vtkMRMLScalarVolumeNode") and not n.IsA("vtkMRMLLabelMapVolumeNode")]
        if not volumes:
            raise InputError(f"no image series could be loaded from the DICOM folder {folder}")
        # Several series (scout, reformats...): the one with the most voxels is the CT to search.
        return max(volumes, key=lambda n: n.GetImageData().GetNumberOfPoints() if n.GetImageData() else 0)


def processScan(logic: L3LocatorSceneLogic, loader: ScanLoader, path: str, model, device: str | None, markupsDirectory: Path) -> dict:
    """Load, find L3, save the markup; returns the CSV row. Nodes added for the scan are removed."""
    from l3locator.cli import csv_row

    scene = slicer.mrmlScene
    before = {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}
    started = time.perf_counter()
    try:
        volumeNode = loader.load(path)
        result = logic.findL3(volumeNode, model, device=device)
        result.input = path
        result.seconds = time.perf_counter() - started
        row = csv_row(path, result)
        markupNode = logic.getL3Markup(volumeNode)
        if markupNode is not None:
            row["markups"] = str(logic.saveMarkup(markupNode, markupsDirectory / f"{caseName(path)}_L3.mrk.json"))
        return row
    finally:
        added = [scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes())]
        for node in added:
            if node.GetID() not in before and not node.GetSingletonTag():
                scene.RemoveNode(node)


def buildParser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="L3LocatorBatch.py", description="Find the L3 slice in many CT scans; one CSV row per scan.")
    parser.add_argument("--input", nargs="+", required=True, metavar="SCAN", help="NIfTI/NRRD files, DICOM folders, or folders of scans")
    parser.add_argument("--output", required=True, help="CSV file to write")
    parser.add_argument("--model", help="model file (default: the shipped model)")
    parser.add_argument("--markups-dir", help="folder for the <scan>_L3.mrk.json files (default: the CSV's folder)")
    parser.add_argument("--device", help="cpu or cuda (default: cuda when present)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from l3locator import L3LocatorError
    from l3locator.cli import CSV_COLUMNS

    args = buildParser().parse_args(argv)
    headless = None if runningInSlicerApplication() else createHeadlessScene()
    logic = L3LocatorSceneLogic()
    try:
        model = logic.loadModel(args.model)
    except L3LocatorError as exc:
        print(f"L3LocatorBatch: error: {exc}", file=sys.stderr)
        return EXIT_BAD_ARGUMENTS
    output = Path(args.output)
    output.parent.mkdir(parents=True, exist_ok=True)
    markupsDirectory = Path(args.markups_dir) if args.markups_dir else output.parent
    loader = ScanLoader(headless)
    scans = expandInputs(args.input)
    failures = 0
    partial = output.with_name(f".{output.name}.partial")
    with open(partial, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*CSV_COLUMNS, "markups"], restval="")
        writer.writeheader()
        for number, scan in enumerate(scans, start=1):
            try:
                row = processScan(logic, loader, scan, model, args.device, markupsDirectory)
            except Exception as exc:  # one bad scan must not stop the batch: its row carries the error
                from l3locator.cli import csv_row

                failures += 1
                expected = isinstance(exc, (L3LocatorError, OSError))
                if not expected:  # a bug or an unforeseen input: keep the details for the report
                    print(traceback.format_exc(), file=sys.stderr)
                row = csv_row(scan, None, str(exc) if expected else f"{type(exc).__name__}: {exc}")
            writer.writerow(row)
            handle.flush()
            print(f"[{number}/{len(scans)}] {row['status']:5s} {scan}" + (f": {row['error']}" if row["error"] else ""), file=sys.stderr)
    os.replace(partial, output)
    print(f"L3LocatorBatch: {len(scans) - failures} of {len(scans)} scans done, {failures} failed; results in {output}", file=sys.stderr)
    return EXIT_SOME_FAILED if failures else EXIT_OK


if __name__ == "__main__":
    status = main(sys.argv[1:])
    if runningInSlicerApplication():
        slicer.util.exit(status)
    else:
        sys.exit(status)
