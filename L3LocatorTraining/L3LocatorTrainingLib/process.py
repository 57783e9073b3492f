"""Run ``l3locator train`` in a background process and collect what it prints (Qt-free)."""

from __future__ import annotations

import importlib.util
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

DEVICES = ("auto", "cpu", "cuda")


def pythonExecutable() -> str:
    """Slicer's Python launcher (``PythonSlicer``) inside Slicer, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def trainingCommand(
    dataFolder: str | os.PathLike, outputFolder: str | os.PathLike, *, trials: int, epochs: int, folds: int,
    device: str = "auto", small: bool = False, resume: bool = False, augmentAllSlices: bool = False,
) -> list[str]:
    """The ``l3locator train`` command line for the chosen budget, with JSON progress lines.

    ``device``: one of :data:`DEVICES` (``auto``: the core's choice, CUDA when present).
    """
    command = [
        pythonExecutable(), "-m", "l3locator.cli", "train", str(dataFolder),
        "--trials", str(int(trials)), "--epochs", str(int(epochs)), "--folds", str(int(folds)),
        "--output-dir", str(outputFolder), "--progress", "json",
    ]
    if device and device != "auto":
        command += ["--device", device]
    if small:
        command.append("--small")
    if augmentAllSlices:
        command += ["--augmentation", "all-slices"]
    if resume:
        command.append("--resume")
    return command


def processEnvironment() -> dict[str, str]:
    """This process's environment, with the folder holding the ``l3locator`` package first on
    ``PYTHONPATH`` (inside Slicer it is a module folder the launched Python does not know)."""
    environment = dict(os.environ)
    spec = importlib.util.find_spec("l3locator")
    if spec is not None and spec.submodule_search_locations:
        packageParent = str(Path(list(spec.submodule_search_locations)[0]).resolve().parent)
        paths = [packageParent] + [p for p in environment.get("PYTHONPATH", "").split(os.pathsep) if p and p != packageParent]
        environment["PYTHONPATH"] = os.pathsep.join(paths)
    environment["PYTHONUNBUFFERED"] = "1"
    return environment


class TrainingRun:
    """A command running in the background, its output lines collected by a reader thread.

    The thread only reads and queues lines; the caller (the widget's timer, on Slicer's main
    thread) takes them with :meth:`readLines`.
    """

    def __init__(self, command: list[str], environment: dict[str, str] | None = None, cwd: str | None = None) -> None:
        kwargs: dict[str, Any] = {}
        if os.name == "nt":
            kwargs["creationflags"] = subprocess.CREATE_NEW_PROCESS_GROUP | getattr(subprocess, "CREATE_NO_WINDOW", 0)
        else:
            kwargs["start_new_session"] = True  # its own process group: cancel stops its workers too
        self.command = command
        self.cancelled = False
        self._lines: queue.Queue[str] = queue.Queue()
        self._process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=environment, cwd=cwd, text=True, encoding="utf-8", errors="replace", bufsize=1, **kwargs,
        )
        self._reader = threading.Thread(target=self._readOutput, name="L3LocatorTrainingOutput", daemon=True)
        self._reader.start()

    @classmethod
    def start(cls, command: list[str]) -> TrainingRun:
        """Start an ``l3locator train`` command (from :func:`trainingCommand`): its output folder
        is created and the ``l3locator`` package is put on the process's path."""
        Path(command[command.index("--output-dir") + 1]).mkdir(parents=True, exist_ok=True)
        return cls(command, environment=processEnvironment())

    def _readOutput(self) -> None:
        for line in self._process.stdout:
            self._lines.put(line.rstrip("\r\n"))
        self._process.stdout.close()

    def readLines(self) -> list[str]:
        """The output lines that arrived since the last call (stdout and stderr interleaved)."""
        lines = []
        while True:
            try:
                lines.append(self._lines.get_nowait())
            except queue.Empty:
                return lines

    def isRunning(self) -> bool:
        """True until the process has ended and all its output has been read into the queue."""
        return self._process.poll() is None or self._reader.is_alive()

    def returnCode(self) -> int | None:
        return self._process.poll()

    def wait(self, timeout: float | None = None) -> int:
        """Wait for the process to end (seconds; None: no limit); returns its exit code."""
        code = self._process.wait(timeout)
        self._reader.join(timeout)
        return code

    def cancel(self, graceSeconds: float = 5.0) -> None:
        """Stop the process (and its children): terminate, then kill after ``graceSeconds``."""
        if self._process.poll() is not None:
            return
        self.cancelled = True
        if os.name == "nt":
            self._process.terminate()
        else:
            os.killpg(self._process.pid, signal.SIGTERM)
        try:
            self._process.wait(graceSeconds)
        except subprocess.TimeoutExpired:
            if os.name == "nt":
                self._process.kill()
            else:
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
