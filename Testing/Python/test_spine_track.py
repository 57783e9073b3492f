"""The spine track (l3locator.spine) on anatomy that outshines the vertebral body, and the vertebra
counter's discs (l3locator.level_count) where a disc reads brighter than cancellous bone."""

from __future__ import annotations

import numpy as np

from l3locator.level_count import _body_profile, _find_discs, _ring_profile
from l3locator.spine import track_spine

PIXEL_MM = 1.0  # in-plane, both axes
SLICE_MM = 2.5


def _contrast_abdomen(slices: int = 60) -> tuple[np.ndarray, tuple[float, float], tuple[float, float]]:
    """An axial stack ``[slice, row A->P, column R->L]`` (HU): soft tissue in air, an osteoporotic
    vertebral body (a 2 mm cortical shell at 700 HU round 90 HU cancellous bone) with its spinal canal
    and arch behind it, and a contrast-filled aorta (a solid 300 HU disc, 24 mm across) in front of
    it and to the left. Returns the stack, the body's centre and the aorta's centre (row, column)."""
    size = 256
    rr, cc = np.mgrid[0:size, 0:size].astype(float)
    section = np.full((size, size), -1000.0)
    section[((rr - 128) / 90) ** 2 + ((cc - 128) / 120) ** 2 <= 1] = 40.0  # the body outline
    body = (150.0, 128.0)
    outer = ((rr - body[0]) / 15) ** 2 + ((cc - body[1]) / 20) ** 2
    inner = ((rr - body[0]) / 13) ** 2 + ((cc - body[1]) / 18) ** 2
    section[outer <= 1] = 700.0
    section[inner <= 1] = 90.0
    canal = (173.0, 128.0)  # behind the body, enclosed by the pedicles and laminae
    ring = ((rr - canal[0]) / 10) ** 2 + ((cc - canal[1]) / 12) ** 2
    section[(ring <= 1) & (section < 700)] = 700.0
    section[((rr - canal[0]) / 7) ** 2 + ((cc - canal[1]) / 9) ** 2 <= 1] = 30.0
    aorta = (120.0, 150.0)
    section[(rr - aorta[0]) ** 2 + (cc - aorta[1]) ** 2 <= 12 ** 2] = 300.0
    return np.repeat(section[None], slices, axis=0).astype(np.int16), body, aorta


def test_the_track_follows_the_body_in_front_of_the_canal_not_a_brighter_aorta():
    """The strongest bone blob near the midline is the contrast-filled aorta (solid, above the bone
    threshold), not the osteoporotic body (only its shell counts); the spinal canal behind the body
    says which is the vertebra. (The real contrast chest CT in ../shared was tracked through its aorta.)"""
    stack, body, aorta = _contrast_abdomen()
    track = track_spine(stack, (PIXEL_MM, PIXEL_MM), SLICE_MM)
    assert track is not None
    off_body_mm = np.hypot(track.rows - body[0], track.cols - body[1]) * PIXEL_MM
    assert off_body_mm.max() < 5.0, (track.rows[:3], track.cols[:3], "aorta at", aorta)


def test_a_vertebra_without_the_canal_in_view_keeps_the_strongest_blob():
    """Where no canal can be seen, the blob is the track (nothing to check it against)."""
    stack, body, _ = _contrast_abdomen()
    stack[:, 160:, :] = np.where(stack[:, 160:, :] > -1000, 40, -1000)  # everything behind the body is soft tissue
    track = track_spine(stack, (PIXEL_MM, PIXEL_MM), SLICE_MM)
    assert track is not None
    assert np.hypot(track.rows - body[0], track.cols - body[1]).min() * PIXEL_MM > 15.0  # on the aorta, as before


def _inverted_spine(dz: float, period_mm: float, disc_mm: float, length_mm: float = 300.0) -> np.ndarray:
    """An axial stack (HU) of an osteoporotic spine whose discs read brighter than its bodies, as on the
    real contrast chest CT in ../shared at 2.5 mm: each body a 2 mm cortical shell (700 HU) round
    70 HU cancellous bone, each disc (from every multiple of ``period_mm``, ``disc_mm`` tall) 180 HU
    between two 2.5 mm endplates at 260 HU filling the body's cross-section (a disc averaged with its
    endplates: 150-265 HU on that scan); the canal and arch behind."""
    size = 256
    rr, cc = np.mgrid[0:size, 0:size].astype(float)
    outline = ((rr - 128) / 90) ** 2 + ((cc - 128) / 120) ** 2 <= 1
    outer = ((rr - 150) / 15) ** 2 + ((cc - 128) / 20) ** 2 <= 1
    inner = ((rr - 150) / 13) ** 2 + ((cc - 128) / 18) ** 2 <= 1
    arch = (((rr - 173) / 10) ** 2 + ((cc - 128) / 12) ** 2 <= 1) & ~outer
    canal = ((rr - 173) / 7) ** 2 + ((cc - 128) / 9) ** 2 <= 1
    sections = []
    for z in np.arange(0.0, length_mm, dz):
        phase = np.mod(z, period_mm)
        section = np.where(outline, 40.0, -1000.0)
        section[arch] = 700.0
        section[canal] = 30.0
        if phase < disc_mm:
            section[outer] = 180.0
        elif phase < disc_mm + 2.5 or phase >= period_mm - 2.5:
            section[outer] = 260.0
        else:
            section[outer] = 700.0
            section[inner] = 70.0
        sections.append(section)
    return np.asarray(sections, dtype=np.int16)


def test_discs_brighter_than_the_bodies_are_found_at_the_discs_not_mid_body():
    """Cancellous bone at 70 HU, each disc with its endplates reading 180-260 HU over 11 mm: the mean
    HU at the body's centre peaks at the discs and dips mid-body, and the endplates are too dull and
    too wide for the rule that read such discs before 2026-12-03 (it found them mid-body, as on the
    real chest CT). The discs must be found at the discs (a count from discs found mid-body is half a
    level off): where the ring of rays from the body's centre meets no cortical shell."""
    dz, period_mm, disc_mm = 2.5, 30.0, 6.0
    stack = _inverted_spine(dz, period_mm, disc_mm)
    track = track_spine(stack, (PIXEL_MM, PIXEL_MM), dz)
    assert track is not None
    discs, period = _find_discs(_body_profile(track), _ring_profile(track), dz)
    assert abs(period - period_mm) <= 2.0
    true_discs = np.arange(disc_mm / 2, len(stack) * dz, period_mm)
    # away from the scan's ends (where the first and last bodies are cut), one disc per true disc
    found, true = discs[(discs > 35.0) & (discs < 265.0)], true_discs[(true_discs > 35.0) & (true_discs < 265.0)]
    assert len(found) == len(true), (discs, true_discs)
    assert np.abs(found - true).max() <= 4.0, (discs, true_discs)
