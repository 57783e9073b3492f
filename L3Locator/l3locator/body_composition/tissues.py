"""The tissues measured at L3, their label values and colours, and the HU ranges that define them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

#: Tissues in label order: skeletal muscle, intermuscular/intramuscular fat (IMAT), visceral fat
#: (VAT), subcutaneous fat (SAT). Label value = position + 1; 0 is "other" (organs, bone, air...).
TISSUES = ("muscle", "imat", "vat", "sat")
#: Label value of each tissue in a tissue label map (uint8; 0 = other).
TISSUE_LABELS = {name: n + 1 for n, name in enumerate(TISSUES)}
#: Display colours (RGB, 0..1) as the usual body-composition tools show them: muscle red, IMAT
#: green, VAT yellow, SAT cyan.
TISSUE_COLOURS_RGB = {
    "muscle": (0.90, 0.10, 0.10),
    "imat": (0.10, 0.80, 0.10),
    "vat": (1.00, 0.85, 0.00),
    "sat": (0.00, 0.80, 1.00),
}
#: Readable names, for tables and pictures.
TISSUE_TITLES = {"muscle": "Skeletal muscle", "imat": "IMAT", "vat": "VAT", "sat": "SAT"}


@dataclass(frozen=True)
class HURanges:
    """Inclusive HU ranges ``(low, high)`` that make a pixel a candidate for each tissue.

    The defaults are the standard ones of the body-composition literature (Mitsiopoulos et al.
    1998; Alberta protocol): skeletal muscle -29..150 HU, visceral fat -150..-50 HU,
    subcutaneous and intermuscular fat -190..-30 HU. A pixel in a range is counted as that
    tissue only in that tissue's compartment (see :mod:`l3locator.body_composition`).
    """

    muscle: tuple[float, float] = (-29.0, 150.0)
    imat: tuple[float, float] = (-190.0, -30.0)
    vat: tuple[float, float] = (-150.0, -50.0)
    sat: tuple[float, float] = (-190.0, -30.0)

    def __post_init__(self) -> None:
        for name in TISSUES:
            low, high = getattr(self, name)
            if not (float(low) <= float(high)):
                raise ValueError(f"HU range of {name} must be (low, high) with low <= high, got {(low, high)}")
            object.__setattr__(self, name, (float(low), float(high)))

    def to_dict(self) -> dict[str, list[float]]:
        """``{tissue: [low, high]}`` (HU), JSON-ready."""
        return {name: list(limits) for name, limits in asdict(self).items()}

    @classmethod
    def from_dict(cls, ranges: dict[str, Any]) -> HURanges:
        """Ranges from ``{tissue: [low, high]}`` (HU); tissues not given keep their defaults.

        Raises:
            ValueError: an unknown tissue name, or a range that is not two numbers low <= high.
        """
        unknown = set(ranges) - set(TISSUES)
        if unknown:
            raise ValueError(f"unknown tissues {sorted(unknown)} in HU ranges; expected some of {TISSUES}")
        parsed = {}
        for name, limits in ranges.items():
            values = list(limits)
            if len(values) != 2:
                raise ValueError(f"HU range of {name} must be two numbers (low, high), got {limits!r}")
            parsed[name] = (float(values[0]), float(values[1]))
        return cls(**parsed)
