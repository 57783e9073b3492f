"""Bad and odd inputs through ``l3locator find`` and ``batch``, generated here in ``tmp_path``.

Every bad argument ends with exit status 2 and exactly one line on stderr naming the file and the
reason; ``batch`` checks its arguments before reading any scan, gives every failing scan a CSV row
with the reason and goes on, and always writes its CSV. Most cases run ``cli.main`` in-process;
an input that could hang (a FIFO) runs in a real subprocess, or a thread, with a timeout. Models here
give a fixed answer, so each test knows what the run finds.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import l3locator.pipeline
import l3locator.reading
from l3locator.cli import main
from l3locator.outputs import to_json
from l3locator.phantoms.writing import write_nifti, write_nrrd
from l3locator.errors import L3LocatorError
from l3locator.runner import MAX_CASE_NAME_BYTES, BackgroundRead, case_name, expand_inputs, find_in_scan, output_names, prepare_run
from l3locator.volume import CTVolume
from test_pipeline import body_volume

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def scan(tmp_path_factory) -> Path:
    return write_nifti(body_volume(slices=12), tmp_path_factory.mktemp("scan") / "body.nii.gz")


@pytest.fixture
def reads(monkeypatch) -> list[str]:
    """The paths read from here on, by the pipeline or in the background (to prove that a bad
    batch read none)."""
    seen: list[str] = []
    for module in (l3locator.pipeline, l3locator.reading):
        original = module.load_ct
        monkeypatch.setattr(module, "load_ct", lambda path, *a, original=original, **kw: seen.append(str(path)) or original(path, *a, **kw))
    return seen


def one_error_line(capsys, *needles: str) -> str:
    """The single stderr line of a refused run; it must name each of ``needles``."""
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("l3locator: error: ") and "Traceback" not in captured.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def read_rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


# --- output locations -------------------------------------------------------------------------------------------


def test_output_dir_that_is_a_file(scan, always_l3, tmp_path, capsys, reads):
    taken = tmp_path / "taken.txt"
    taken.write_text("a file")
    assert main(["find", str(scan), "--model", str(always_l3), "--output-dir", str(taken)]) == 2
    one_error_line(capsys, "--output-dir", str(taken), "is a file")
    assert main(["find", str(scan), "--model", str(always_l3), "--output-dir", str(taken / "sub" / "dir")]) == 2
    one_error_line(capsys, str(taken / "sub" / "dir"), f"lies under the file {taken}")
    assert main(["batch", str(scan), "--model", str(always_l3), "--output", str(tmp_path / "r.csv"), "--output-dir", str(taken)]) == 2
    one_error_line(capsys, str(taken), "is a file")
    assert reads == [] and not (tmp_path / "r.csv").exists() and taken.read_text() == "a file"


def test_batch_output_that_is_a_folder_is_refused_before_any_scan(scan, always_l3, tmp_path, capsys, reads):
    folder = tmp_path / "results"
    folder.mkdir()
    assert main(["batch", str(scan), "--model", str(always_l3), "--output", str(folder)]) == 2
    one_error_line(capsys, "--output", str(folder), "is a folder")
    under_file = tmp_path / "taken.txt"
    under_file.write_text("a file")
    assert main(["batch", str(scan), "--model", str(always_l3), "--output", str(under_file / "results.csv")]) == 2
    one_error_line(capsys, str(under_file / "results.csv"), "is a file")
    assert reads == [] and list(folder.iterdir()) == []


def test_too_long_file_names_get_shortened_unique_output_names(always_l3, tmp_path, capsys):
    volume = body_volume(slices=12)
    stems = ["x" * 230 + "a", "x" * 230 + "b", "é" * 115]  # 231 and 230 bytes: too long with "_L3.mrk.json" and a temporary's suffix
    short = write_nifti(volume, tmp_path / "short.nii.gz")
    scans = [tmp_path / f"{stem}.nii.gz" for stem in stems]
    for path in scans:
        os.link(short, path)  # the scan writer's own temporary name would be too long
    names = [case_name(path) for path in scans]
    assert len(set(names)) == 3 and all(len(name.encode()) <= MAX_CASE_NAME_BYTES for name in names)
    assert names[0].startswith("x" * 100) and names[2].startswith("é" * 50)
    out = tmp_path / "out"
    assert main(["find", str(scans[0]), "--model", str(always_l3), "--output-dir", str(out), "--json"]) == 0
    outputs = json.loads(capsys.readouterr().out)["outputs"]
    assert {Path(path).name for path in outputs.values()} == {f"{names[0]}_L3.json", f"{names[0]}_L3.mrk.json", f"{names[0]}_L3_qc.png"}
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(path).name for path in outputs.values())  # no temporaries left


# --- devices and models -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("command", ["find", "batch"])
def test_unknown_device(command, scan, always_l3, tmp_path, capsys, reads):
    extra = ["--output", str(tmp_path / "r.csv")] if command == "batch" else ["--output-dir", str(tmp_path / "out")]
    assert main([command, str(scan), "--model", str(always_l3), "--device", "banana", *extra]) == 2
    one_error_line(capsys, "banana")
    # find reads its one scan while torch loads (BackgroundRead), but writes nothing; batch reads none
    assert reads == ([str(scan)] if command == "find" else []) and not (tmp_path / "r.csv").exists() and not (tmp_path / "out").exists()


def test_find_reads_in_the_background_with_the_same_result_and_errors(scan, always_l3, tmp_path):
    settings = prepare_run(always_l3, "cpu")
    direct, _ = find_in_scan(scan, settings)
    background, _ = find_in_scan(BackgroundRead(scan), settings)
    assert background.to_dict() | {"seconds": 0} == direct.to_dict() | {"seconds": 0}
    assert background.input == str(scan) and background.seconds > 0
    garbage = tmp_path / "garbage.nii.gz"
    garbage.write_bytes(b"not a scan")
    pending = BackgroundRead(garbage)
    with pytest.raises(L3LocatorError, match="garbage.nii.gz"):
        find_in_scan(pending, settings)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu(scan, always_l3, tmp_path, capsys, reads):
    assert main(["batch", str(scan), "--model", str(always_l3), "--device", "cuda", "--output", str(tmp_path / "r.csv")]) == 2
    one_error_line(capsys, "cuda", "no CUDA GPU")
    assert reads == []


def test_bad_model_file_is_refused_before_any_scan(scan, tmp_path, capsys, reads):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a model")
    assert main(["batch", str(scan), "--model", str(bad), "--output", str(tmp_path / "r.csv")]) == 2
    one_error_line(capsys, "bad.pt")
    assert reads == [] and not (tmp_path / "r.csv").exists()


# --- batch: every scan gets a row, the batch goes on ------------------------------------------------------------


def test_a_reader_bug_gives_a_row_and_the_batch_goes_on(always_l3, tmp_path, capsys, monkeypatch):
    volume = body_volume(slices=12)
    first, broken, last = (write_nifti(volume, tmp_path / f"{name}.nii.gz") for name in ("first", "broken", "last"))
    (tmp_path / "empty").mkdir()
    original = l3locator.pipeline.load_ct

    def load_ct(path, *args, **kwargs):
        if Path(path).name == "broken.nii.gz":
            raise RuntimeError("reader bug")
        return original(path, *args, **kwargs)

    monkeypatch.setattr(l3locator.pipeline, "load_ct", load_ct)
    output = tmp_path / "results.csv"
    scans = [first, broken, tmp_path / "missing.nrrd", tmp_path / "empty", last]
    assert main(["batch", *map(str, scans), "--model", str(always_l3), "--output", str(output), "--device", "cpu"]) == 1
    rows = read_rows(output)
    assert [row["input"] for row in rows] == [str(path) for path in scans]
    assert [row["status"] for row in rows] == ["ok", "error", "error", "error", "ok"]
    assert rows[1]["error"] == "RuntimeError: reader bug"
    assert "missing.nrrd" in rows[2]["error"] and "empty" in rows[3]["error"]
    err = capsys.readouterr().err
    assert err.count("Traceback") == 1 and "reader bug" in err  # the traceback of the unexpected error only
    assert "2 of 5 scans done, 3 failed" in err


def test_interrupted_batch_still_writes_its_rows(always_l3, tmp_path, monkeypatch):
    volume = body_volume(slices=12)
    scans = [write_nifti(volume, tmp_path / f"s{n}.nii.gz") for n in range(3)]
    original = l3locator.pipeline.load_ct

    def load_ct(path, *args, **kwargs):
        if Path(path).name == "s1.nii.gz":
            raise KeyboardInterrupt
        return original(path, *args, **kwargs)

    monkeypatch.setattr(l3locator.pipeline, "load_ct", load_ct)
    output = tmp_path / "results.csv"
    assert main(["batch", *map(str, scans), "--model", str(always_l3), "--output", str(output)]) == 130
    assert [row["input"] for row in read_rows(output)] == [str(scans[0])]


def test_same_file_names_in_different_folders_get_separate_outputs(always_l3, never_l3, tmp_path, capsys):
    volume = body_volume(slices=12)
    scans = [write_nifti(volume, tmp_path / "data" / patient / "ct.nii.gz") for patient in ("patA", "patB")]
    scans.append(write_nrrd(volume, tmp_path / "data" / "patB" / "ct.nrrd"))  # same case name in the same folder
    names = output_names(scans)
    assert names[0] == "patA/ct" and names[1] != names[2]  # the folders mirrored; ct.nii.gz and ct.nrrd hashed apart
    assert all(name.startswith("patB/ct_") and len(name) == len("patB/ct_") + 8 for name in names[1:])
    out = tmp_path / "out"
    for model in (always_l3, never_l3):
        assert main(["batch", *map(str, scans), "--model", str(model), "--output", str(tmp_path / "r.csv"), "--output-dir", str(out)]) == 0
        rows = read_rows(tmp_path / "r.csv")
        results = [Path(row["result_file"]) for row in rows]
        assert len(set(results)) == 3
        for row, result in zip(rows, results):
            assert json.loads(result.read_text())["input"] == row["input"]
            assert (row["markups_file"] != "") == (model == always_l3) and row["qc_file"]
    assert results[0] == out / "patA" / "ct_L3.json" and results[1].parent == results[2].parent == out / "patB"
    assert not list(out.rglob("*.mrk.json"))  # the second run found no L3: the first run's markups are gone
    capsys.readouterr()


def test_phantom_folders_feed_only_the_ct_scans(always_l3, tmp_path, capsys):
    volume = body_volume(slices=12)
    data = tmp_path / "data"
    for case in ("p1", "p2"):
        write_nifti(volume, data / f"{case}.nii.gz")
        write_nifti(CTVolume(np.zeros_like(volume.voxels), volume.ijk_to_ras), data / f"{case}_vertebrae.nii.gz")
    (data / "p1.l3.json").write_text("{}")
    (data / "notes.txt").write_text("not a scan")
    for arguments in ([str(data)], sorted(str(path) for path in data.glob("*.nii.gz"))):  # a folder, and a shell glob
        output = tmp_path / "r.csv"
        assert main(["batch", *arguments, "--model", str(always_l3), "--output", str(output)]) == 0
        assert [Path(row["input"]).name for row in read_rows(output)] == ["p1.nii.gz", "p2.nii.gz"]
        notes = [line for line in capsys.readouterr().err.splitlines() if "skipping" in line]
        assert sum("vertebra label map" in note for note in notes) == 1 and "p2_vertebrae.nii.gz" in " ".join(notes)
    assert main(["batch", str(data / "p1_vertebrae.nii.gz"), "--model", str(always_l3), "--output", str(tmp_path / "none.csv")]) == 2
    one_error_line(capsys, "no scan", "p1_vertebrae.nii.gz")
    assert expand_inputs([data]).scans == [data / "p1.nii.gz", data / "p2.nii.gz"]
    assert {reason for _, reason in expand_inputs([data]).skipped} == {
        "labels, not scans", "vertebra label maps, not scans", "not a NIfTI/NRRD file or a folder"}


# --- parallel runs and strict JSON ------------------------------------------------------------------------------


def test_parallel_finds_into_one_output_dir_never_collide(scan, always_l3, tmp_path):
    settings = prepare_run(always_l3, "cpu", tmp_path / "out")
    errors: list[BaseException] = []

    def run() -> None:
        try:
            find_in_scan(scan, settings)
        except BaseException as exc:  # noqa: BLE001 - collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert errors == [] and not any(thread.is_alive() for thread in threads)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["body_L3.json", "body_L3.mrk.json", "body_L3_qc.png"]
    assert json.loads((tmp_path / "out" / "body_L3.json").read_text())["l3_found"]


def test_reader_warnings_reach_the_json_and_json_is_strict(always_l3, tmp_path, capsys):
    volume = body_volume(slices=12)
    voxels = volume.voxels.astype(np.float32)
    voxels[0, 0, :3] = np.nan
    path = write_nifti(CTVolume(voxels, volume.ijk_to_ras), tmp_path / "with_nan.nii.gz")
    assert main(["find", str(path), "--model", str(always_l3), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out, parse_constant=lambda name: pytest.fail(f"{name} in JSON"))
    assert any("NaN" in warning for warning in printed["warnings"])
    with pytest.raises(ValueError):
        to_json({"confidence": float("nan")})


# --- inputs that could hang: a real process for find, a watched thread for batch ----------------------------------


def test_fifo_input_is_refused_not_waited_on(always_l3, tmp_path, capsys):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs on this system")
    fifo = tmp_path / "scan.nii.gz"
    os.mkfifo(fifo)
    command = [sys.executable, "-m", "l3locator", "find", str(fifo), "--model", str(always_l3)]
    find = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT / "L3Locator")})
    assert find.returncode == 2 and len(find.stderr.splitlines()) == 1, find.stderr
    assert str(fifo) in find.stderr and "FIFO" in find.stderr.upper()

    folder = tmp_path / "folder"
    folder.mkdir()
    os.mkfifo(folder / "pipe.nrrd")
    output = tmp_path / "results.csv"
    codes: list[int] = []
    batch = threading.Thread(target=lambda: codes.append(main(["batch", str(folder), "--model", str(always_l3), "--output", str(output)])), daemon=True)
    batch.start()
    batch.join(timeout=300)
    assert codes == [1], "batch over a folder holding a FIFO did not finish"
    (row,) = read_rows(output)
    assert row["status"] == "error" and "pipe.nrrd" in row["error"]
    capsys.readouterr()


def test_help_and_parser_import_neither_torch_nor_the_phantom_generator():
    """``l3locator --help`` (and every subcommand's) answers at once: building the parser imports
    no torch, torchvision or phantom generator (torch alone takes seconds to import)."""
    code = (
        "import sys; from l3locator.cli import build_parser; build_parser(); "
        "heavy = sorted(m for m in ('torch', 'torchvision', 'scipy', 'l3locator.phantoms') if m in sys.modules); "
        "print(','.join(heavy))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
    help_run = subprocess.run([sys.executable, "-m", "l3locator", "train", "--help"], capture_output=True, text=True, timeout=60)
    assert help_run.returncode == 0 and "--trials" in help_run.stdout and ":mod:" not in help_run.stdout


# --- the command's quick exit ----------------------------------------------------------------------


def test_the_command_prints_its_whole_answer_and_its_exit_code_before_the_quick_exit(always_l3, scan, tmp_path):
    """``python -m l3locator find`` ends with ``os._exit`` (no interpreter teardown): the JSON on a
    pipe is whole, the output file written, and the exit code kept."""
    env = {**os.environ, "PYTHONPATH": str(ROOT / "L3Locator")}
    command = [sys.executable, "-m", "l3locator", "find", str(scan), "--model", str(always_l3), "--json", "--output-dir", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["l3_found"] and len(answer["slice_probabilities"]) == 12
    assert json.loads((tmp_path / "body_L3.json").read_text())["l3_slice_index"] == answer["l3_slice_index"]
    missing = subprocess.run([sys.executable, "-m", "l3locator", "find", str(tmp_path / "none.nii.gz")], capture_output=True, text=True,
                             timeout=300, env=env)
    assert missing.returncode == 2 and "none.nii.gz" in missing.stderr
    # output still in Python's buffers (a pipe is block-buffered) is flushed before the exit
    buffered = "import l3locator.cli as cli; cli.main = lambda: print('x' * 5000, end='') or 4; cli.run_and_exit()"
    buffering = {name: value for name, value in env.items() if name != "PYTHONUNBUFFERED"}
    done = subprocess.run([sys.executable, "-c", buffered], capture_output=True, text=True, timeout=60, env=buffering)
    assert (done.returncode, done.stdout) == (4, "x" * 5000)


def test_the_quick_exit_waits_for_a_running_thread_or_child_process(monkeypatch, capsys):
    import l3locator.cli as cli

    exits: list[tuple[str, int]] = []
    monkeypatch.setattr(cli, "main", lambda: print("answer") or 3)
    monkeypatch.setattr(cli.os, "_exit", lambda code: exits.append(("quick", code)))
    cli.run_and_exit()
    assert exits == [("quick", 3)] and capsys.readouterr().out == "answer\n"

    release = threading.Event()
    worker = threading.Thread(target=release.wait)
    worker.start()
    try:
        with pytest.raises(SystemExit) as usual:
            cli.run_and_exit()
    finally:
        release.set()
        worker.join()
    assert usual.value.code == 3 and exits == [("quick", 3)]

    import multiprocessing

    child = multiprocessing.get_context("spawn").Process(target=time.sleep, args=(30,))
    child.start()
    try:
        with pytest.raises(SystemExit):
            cli.run_and_exit()
    finally:
        child.terminate()
        child.join()
    assert exits == [("quick", 3)]
