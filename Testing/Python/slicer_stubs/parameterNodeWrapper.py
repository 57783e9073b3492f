"""Stand-in for ``slicer.parameterNodeWrapper``: the decorator leaves the class as it is."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


def parameterNodeWrapper(classtype):
    return classtype


@dataclass
class WithinRange:
    minimum: float
    maximum: float


@dataclass
class Choice:
    choices: Any
