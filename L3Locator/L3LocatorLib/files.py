"""File names the modules make from what a user typed (case names, model names)."""

from __future__ import annotations

import re


def safeFileName(text: str, fallback: str = "case") -> str:
    """``text`` made safe as a file name on every OS: runs of other characters than letters,
    digits, ``.``, ``_`` and ``-`` become ``_``; no leading dot; ``fallback`` if nothing is left."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip()).strip("_").lstrip(".")
    return name or fallback
