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

from l3locator.choices import SHIPPED_MODEL

DEVICES = ("auto", "cpu", "cuda")
#: Where training starts: the shipped model's weights, another model file's, or random weights.
START_FROM = ("shipped model", "another model", "scratch")
#: How the design parameters are set: fixed (``--quick``) or by Bayesian optimisation over the trials.
TRAINING_MODES = ("quick adapt", "full optimisation")


def pythonExecutable() -> str:
    """Slicer's Python launcher (``PythonSlicer``) inside Slicer, else this interpreter."""
    return shutil.which("PythonSlicer") or sys.executable


def trainingCommand(
    dataFolder: str | os.PathLike, outputFolder: str | os.PathLike, *, trials: int, epochs: int, folds: int,
    device: str = "auto", small: bool = False, resume: bool = False, augmentAllSlices: bool = False,
    startFrom: str = "scratch", initModelPath: str | os.PathLike | None = None, trainingMode: str = "full optimisation",
    freezeLayers: int = 0,
) -> list[str]:
    """The ``l3locator train`` command line for the chosen budget, with JSON progress lines.

    ``device``: one of :data:`DEVICES` (``auto``: the core's choice, CUDA when present).
    ``startFrom``: one of :data:`START_FROM` (``another model``: ``initModelPath``, a model
    file); ``freezeLayers``: ResNet stages kept as they are when starting from a model.
    ``trainingMode``: one of :data:`TRAINING_MODES` (``quick adapt``: ``--quick``, ``trials``
    unused).

    Raises:
        ValueError: an unknown choice, or ``another model`` without a model file.
    """
    if startFrom not in START_FROM:
        raise ValueError(f"start from must be one of {START_FROM}, got {startFrom!r}")
    if trainingMode not in TRAINING_MODES:
        raise ValueError(f"training mode must be one of {TRAINING_MODES}, got {trainingMode!r}")
    quick = trainingMode == "quick adapt"
    command = [pythonExecutable(), "-m", "l3locator.cli", "train", str(dataFolder)]
    command += ["--quick"] if quick else ["--trials", str(int(trials))]
    command += ["--epochs", str(int(epochs)), "--folds", str(int(folds)), "--output-dir", str(outputFolder), "--progress", "json"]
    if startFrom == "shipped model":
        command += ["--init-model", SHIPPED_MODEL]
    elif startFrom == "another model":
        if not initModelPath or str(initModelPath) in ("", "."):
            raise ValueError("choose the model file to start from")
        command += ["--init-model", str(initModelPath)]
    if startFrom != "scratch" and freezeLayers:
        command += ["--freeze-layers", str(int(freezeLayers))]
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
