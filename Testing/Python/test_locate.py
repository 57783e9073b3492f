"""The rule from per-slice probabilities to one L3 slice, its confidence and its flags."""

import numpy as np
import pytest

from l3locator.locate import LocateRule, find_runs, locate_l3


def bump(n: int, first: int, last: int, height: float = 0.95, background: float = 0.02) -> np.ndarray:
    p = np.full(n, background)
    p[first : last + 1] = height
    return p


def test_find_runs():
    assert find_runs(np.array([0, 1, 1, 0, 1, 0, 0, 1], dtype=bool)) == [(1, 2), (4, 4), (7, 7)]
    assert find_runs(np.zeros(4, dtype=bool)) == []


def test_clear_single_run_gives_its_centre_with_high_confidence():
    found = locate_l3(bump(100, 40, 50), slice_thickness_mm=3.0)
    assert found.l3_found and found.slice_index == 45
    assert found.slice_range[0] <= 40 and found.slice_range[1] >= 50
    assert found.confidence > 0.8 and found.flags == []


def test_centre_is_probability_weighted():
    p = np.zeros(60)
    p[20:31] = np.linspace(0.6, 1.0, 11)  # rising towards the top of the run
    found = locate_l3(p, slice_thickness_mm=3.0, rule=LocateRule(smoothing_mm=0.1))
    assert found.slice_index == 26  # weighted centroid, not the run's midpoint 25


def test_flat_low_probabilities_mean_no_l3():
    found = locate_l3(np.full(200, 0.1), slice_thickness_mm=2.5)
    assert not found.l3_found and found.slice_index is None
    assert found.flags == ["no_l3_found"] and found.confidence == 0.0


def test_isolated_spike_is_smoothed_away():
    p = np.full(200, 0.02)
    p[100] = 0.99  # one slice at 1 mm is not an L3 vertebra
    assert not locate_l3(p, slice_thickness_mm=1.0).l3_found


def test_two_strong_runs_are_flagged_and_the_larger_wins():
    p = bump(120, 20, 30)
    p[80:86] = 0.9
    found = locate_l3(p, slice_thickness_mm=3.0)
    assert "multiple_candidates" in found.flags
    assert 20 <= found.slice_index <= 30
    assert found.confidence < locate_l3(bump(120, 20, 30), slice_thickness_mm=3.0).confidence


def test_run_at_the_scan_edge_is_flagged():
    found = locate_l3(bump(80, 0, 6), slice_thickness_mm=3.0)
    assert found.l3_found and "l3_at_scan_edge" in found.flags
    assert "l3_at_scan_edge" not in locate_l3(bump(80, 30, 40), slice_thickness_mm=3.0).flags


def test_implausible_extent_is_flagged_and_lowers_confidence():
    long_run = locate_l3(bump(400, 50, 250), slice_thickness_mm=1.0)  # 200 mm: not one vertebra
    assert "implausible_extent" in long_run.flags
    assert long_run.confidence < 0.5 and "low_confidence" in long_run.flags


def test_rule_is_in_mm_so_thickness_does_not_change_the_answer_position():
    """The same anatomy sampled at 1 mm and 5 mm gives the same L3 height in mm."""
    z_fine = np.arange(0, 300, 1.0)
    z_coarse = np.arange(0, 300, 5.0)
    truth_mm = (140.0, 170.0)
    fine = locate_l3(((z_fine >= truth_mm[0]) & (z_fine <= truth_mm[1])) * 0.9 + 0.02, 1.0)
    coarse = locate_l3(((z_coarse >= truth_mm[0]) & (z_coarse <= truth_mm[1])) * 0.9 + 0.02, 5.0)
    assert abs(z_fine[fine.slice_index] - z_coarse[coarse.slice_index]) <= 5.0


@pytest.mark.parametrize("bad", [np.array([]), np.zeros((3, 3))])
def test_bad_probability_arrays_are_rejected(bad):
    with pytest.raises(ValueError):
        locate_l3(bad, 1.0)


def test_anatomical_check_rejects_a_run_and_falls_back_to_the_next():
    p = np.zeros(100)
    p[10:20] = 1.0  # weaker run
    p[50:70] = 1.0  # stronger run, "in the chest"
    plain = locate_l3(p, 2.0)
    assert plain.slice_range == (50, 69) and "multiple_candidates" in plain.flags
    asked = []
    checked = locate_l3(p, 2.0, reject_centre=lambda k: asked.append(k) or 40 <= k <= 80)
    assert checked.l3_found and checked.slice_range == (10, 19) and "anatomy_rejected" in checked.flags
    assert len(asked) == 2 and 55 <= asked[0] <= 64 and 10 <= asked[1] <= 19  # strongest first, stops at the first accepted
    assert checked.confidence < plain.confidence  # the rejected run's evidence still counts against
    nothing = locate_l3(p, 2.0, reject_centre=lambda k: True)
    assert not nothing.l3_found and nothing.flags == ["no_l3_found", "anatomy_rejected"]
