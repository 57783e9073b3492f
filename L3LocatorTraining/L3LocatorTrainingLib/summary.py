"""What a training folder holds, counted by the core off Slicer's main thread (Qt-free).

The counting is the core's :func:`l3locator.training.dataset.folder_summary` (the same case
discovery and counts as ``l3locator train``). It reads every label: ``.l3.json`` files are
small, but a vertebra label map is a whole volume to decompress (about a second for a
512 x 512 x 130 map), so a folder of them takes a while and is counted in a thread.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any


def summaryText(summary: dict[str, Any]) -> str:
    """The summary for people: counts on the first line, then one line per problem."""
    text = (
        f"{summary['cases']} case(s) of {summary['patients']} patient(s): "
        f"{summary['l3_slices']} L3 slices, {summary['other_slices']} other slices"
    )
    if summary["cases_without_l3"]:
        text += f"; {summary['cases_without_l3']} case(s) without L3"
    if summary["unlabelled_files"]:
        text += f"; {len(summary['unlabelled_files'])} CT file(s) without a label (ignored)"
    return "\n".join([text + ".", *(f"• {problem}" for problem in summary["problems"])])


class FolderSummaryTask:
    """:func:`~l3locator.training.dataset.folder_summary` of a folder, running in a thread.

    Poll :meth:`done` (e.g. from a timer), then take :meth:`result`.
    """

    def __init__(self, folder: str | os.PathLike) -> None:
        self.folder = Path(folder)
        self._summary: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="L3LocatorTrainingFolderSummary", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            from l3locator.training.dataset import folder_summary

            self._summary = folder_summary(self.folder)
        except BaseException as exc:  # handed to the caller by result()
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait up to ``timeout`` seconds (None: no limit); True when the count has finished."""
        self._thread.join(timeout)
        return self.done()

    def result(self) -> dict[str, Any]:
        """The summary (see ``folder_summary``).

        Raises:
            RuntimeError: the count has not finished.
            l3locator.InputError: the folder is not a folder (or whatever the count raised).
        """
        if not self.done():
            raise RuntimeError("the folder summary is still being counted")
        if self._error is not None:
            raise self._error
        return self._summary
