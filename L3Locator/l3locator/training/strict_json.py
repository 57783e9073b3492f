"""Strict JSON for everything the training package writes: non-finite numbers become ``null``.

Python's ``json`` writes ``NaN`` and ``Infinity`` by default, which no other JSON reader accepts.
Here a statistic that does not exist (NaN, an infinite loss) is written as ``null``, and
``json.dumps(..., allow_nan=False)`` guarantees nothing non-finite slips through. Files are
published with :func:`l3locator.atomic.write_atomically`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from ..atomic import write_atomically


def finite_or_none(value: Any) -> Any:
    """``value`` with every non-finite float (at any depth of dicts, lists, tuples) replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    return value


def json_text(value: Any, *, indent: int | None = None) -> str:
    """Strict JSON text of ``value`` (non-finite numbers as ``null``; no trailing newline)."""
    return json.dumps(finite_or_none(value), indent=indent, allow_nan=False)


def write_json(path: str | os.PathLike, value: Any, *, indent: int | None = None) -> Path:
    """Write ``value`` as strict JSON (plus a newline) to ``path``, atomically; returns the path."""
    text = json_text(value, indent=indent) + "\n"
    return write_atomically(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
