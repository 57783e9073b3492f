"""Anatomical plausibility checks on a candidate L3 slice, independent of the model.

One check: **no lungs**. An axial slice through L3 lies well below the lungs (their lowest
point, the posterior costophrenic recesses, reaches about L1), so the only air inside the body at
L3 is bowel gas. A slice through the mid-thorax is a quarter to a half lung. The locate step
rejects a candidate whose centre slice has more than :data:`MAX_L3_AIR_FRACTION` of the body's
cross-section at air-like values: a safety net against a model that mistakes thoracic anatomy
for L3 (seen on real chest CT with a model trained on phantoms), not a second classifier.

Measured (``air_fraction_in_body``) on 31 training phantoms: at most 0.026 on any L3 slice;
thoracic slices (T4–T10) median 0.23. The threshold, 0.15, leaves room for the bowel gas of real
abdomens (a distended colon) while still catching mid-thoracic slices.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

#: Largest share of the body's cross-section at air-like HU on a plausible L3 slice.
MAX_L3_AIR_FRACTION = 0.15
#: HU above which a pixel counts as the patient (soft tissue, fat, bone) for the body outline.
BODY_HU = -500.0
#: HU below which a pixel inside the body counts as air (lung, bowel gas).
AIR_HU = -400.0


def air_fraction_in_body(hu_slice: np.ndarray) -> float:
    """Share of the body's cross-section (largest connected region above :data:`BODY_HU`, holes
    filled) that is below :data:`AIR_HU`: lungs and gas. 0.0 for a slice without a body.

    Args:
        hu_slice: one axial slice in HU, ``[rows, columns]``.
    """
    body = ndimage.binary_fill_holes(np.asarray(hu_slice) > BODY_HU)
    regions, count = ndimage.label(body)
    if count == 0:
        return 0.0
    sizes = ndimage.sum_labels(body, regions, index=np.arange(1, count + 1))
    body = regions == 1 + int(np.argmax(sizes))
    air = body & (np.asarray(hu_slice) < AIR_HU)
    return float(air.sum()) / float(body.sum())


def has_lungs(hu_slice: np.ndarray) -> bool:
    """True when ``hu_slice`` holds too much air inside the body to be an L3 slice."""
    return air_fraction_in_body(hu_slice) > MAX_L3_AIR_FRACTION
