"""Settings dataclasses that model files and training logs store as plain dicts, read back
strictly: a key this version does not know means a newer or foreign file, never a silent default."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any


def check_known_keys(settings_class: type, values: Mapping[str, Any], what: str) -> None:
    """Raise ``ValueError("unknown <what>: [...]")`` if ``values`` has a key that is not a field
    of the dataclass ``settings_class``."""
    unknown = set(values) - {field.name for field in fields(settings_class)}
    if unknown:
        raise ValueError(f"unknown {what}: {sorted(unknown)}")
