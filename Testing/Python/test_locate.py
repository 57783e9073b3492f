"""The rule from per-slice probabilities to one L3 slice, its confidence and its flags."""

import numpy as np
import pytest

from l3locator.locate import (
    LocateRule,
    find_runs,
    locate_l3,
    probability_bounds,
    smooth,
    smoothing_reach,
    smoothing_weights,
    uncertain_slices,
)


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


# --- the rule under bounds ------------------------------------------------------------------------


def test_smoothing_reach_matches_the_gaussian_truncation():
    rule = LocateRule(smoothing_mm=4.0)
    assert smoothing_reach(500, 1.0, rule) == 12  # sigma 4 slices, truncated at 3 sigma
    assert smoothing_reach(100, 5.0, rule) == 2  # sigma 0.8 slice: int(2.4 + 0.5)
    assert smoothing_reach(100, 20.0, rule) == 0  # sigma below a quarter slice: no smoothing
    assert smoothing_reach(10, 0.5, rule) == 10  # reach capped at the scan length


def test_smoothing_weights_are_the_rules_gaussian():
    weights = smoothing_weights(500, 1.0, LocateRule(smoothing_mm=4.0))
    assert len(weights) == 13
    np.testing.assert_allclose(weights / weights[0], np.exp(-np.arange(13) ** 2 / 32.0), rtol=1e-9)
    assert abs(weights[0] + 2 * weights[1:].sum() - 1.0) < 1e-12
    p = np.random.default_rng(0).uniform(size=60)  # the rule's smoothing, away from the ends, is this kernel
    kernel = np.concatenate((weights[:0:-1], weights))
    np.testing.assert_allclose(smooth(p, 1.0)[12:-12], np.convolve(p, kernel, mode="valid"), rtol=1e-12)


def test_probability_bounds_and_certainty_of_an_answer():
    p = np.array([0.5, 0.99, 0.01, 0.5])
    bounds = probability_bounds(p, np.array([False, False, False, True]), 0.3)
    assert bounds[0] == pytest.approx(1 / (1 + np.exp(-0.3)) - 0.5) and bounds[3] == 0.0
    assert bounds[1] < 0.004 and bounds[2] < 0.004  # saturated slices hardly move (about p (1 - p) x 0.3)
    curve = np.full(60, 0.02)
    curve[20:33] = 0.98  # odd length: the centre is a whole slice
    rule = LocateRule()

    def certain(values, bounds):
        return not uncertain_slices(values, bounds, 2.5, rule).any()

    assert certain(curve, probability_bounds(curve, np.zeros(60, bool), 0.3))
    assert not certain(curve, np.full(60, 0.5))  # anything could happen
    errors = (0.0, 0.3, 0.6, 1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 8.0)
    verdicts = [certain(curve, probability_bounds(curve, np.zeros(60, bool), e)) for e in errors]
    assert verdicts[0] and not verdicts[-1] and verdicts == sorted(verdicts, reverse=True)  # wider bounds never certify more
    first_doubt = errors[verdicts.index(False)]
    marked = uncertain_slices(curve, probability_bounds(curve, np.zeros(60, bool), first_doubt), 2.5, rule)
    assert marked.any() and not marked[:10].any() and not marked[45:].any()  # near the run, not far from it
    tie = np.full(60, 0.02)
    tie[20:30] = 0.98  # symmetric run: its centre is exactly 24.5, half-way between two slices
    assert certain(tie, np.zeros(60))
    marked = uncertain_slices(tie, np.full(60, 1e-4), 2.5, rule)  # the slightest change could round it either way
    assert marked[22:28].all()  # the whole run is marked


def random_curve(rng: np.random.Generator, n: int) -> np.ndarray:
    """A noisy background with a few blocks of L3-like evidence of random height and length."""
    p = rng.uniform(0.0, 0.2, n)
    for _ in range(int(rng.integers(0, 6))):
        first = int(rng.integers(0, n))
        p[first : first + int(rng.integers(1, 30))] = rng.uniform(0.3, 1.0)
    return np.clip(p + rng.normal(0.0, 0.05, n), 0.0, 1.0)


def test_a_certain_answer_holds_for_every_curve_within_the_bounds():
    """The interval form is sound: where it finds nothing uncertain, no curve within the bounds
    (random ones and the corners p +- bound) changes the slice, range or flags."""
    rng = np.random.default_rng(7)
    certified = 0
    for _ in range(300):
        n, thickness = int(rng.integers(30, 120)), float(rng.choice([1.0, 2.5, 5.0]))
        rule = LocateRule(rival_fraction=float(rng.uniform(0.1, 0.6)), low_confidence=float(rng.uniform(0.3, 0.9)))
        p = random_curve(rng, n)
        bounds = probability_bounds(p, rng.random(n) < 0.3, float(rng.choice([0.05, 0.2, 0.5])))
        if uncertain_slices(p, bounds, thickness, rule).any():
            continue
        certified += 1
        reject = lambda k: k % 7 == 0  # an anatomical check that depends on the centre only
        answer = locate_l3(p, thickness, rule, reject_centre=reject)
        signs = [rng.uniform(-1.0, 1.0, n) for _ in range(15)] + [np.ones(n), -np.ones(n), np.where(np.arange(n) % 2, 1.0, -1.0)]
        for sign in signs:
            other = locate_l3(np.clip(p + sign * bounds, 0.0, 1.0), thickness, rule, reject_centre=reject)
            assert (other.l3_found, other.slice_index, other.slice_range, other.flags) == (
                answer.l3_found, answer.slice_index, answer.slice_range, answer.flags)
    assert certified > 50


def near_tie(kind: str) -> tuple[np.ndarray, np.ndarray, list[np.ndarray], slice]:
    """A curve (1 mm slices, no smoothing) with one comparison of the rule at its limit, a bound
    of 0.01 on the run slices, the sign patterns that push the comparison either way, and the
    run whose mass decides it. Runs have odd lengths, so their centres are whole slices."""
    p, bounds = np.full(80, 0.02), np.zeros(80)
    first = slice(10, 31)  # 21 slices
    second = {"min_mass": slice(50, 57), "rival": slice(50, 57), "heavier": slice(50, 71)}[kind]
    if kind == "min_mass":  # a lone run of mass 4.06 mm against min_mass_mm 4
        p[second] = 0.58
    else:
        p[first] = 0.9
        p[second] = {"rival": 0.3 * 0.9 * 21 / 7, "heavier": 0.9 * 1.0001}[kind]  # mass 0.3 x or 1 x the first's
        bounds[first] = 0.01
    bounds[second] = 0.01
    up_first = np.where(np.arange(80) < 40, 1.0, -1.0)
    return p, bounds, [up_first, -up_first], second


@pytest.mark.parametrize("kind", ["min_mass", "rival", "heavier"])
def test_each_comparison_at_its_limit_is_marked_uncertain(kind):
    rule = LocateRule(smoothing_mm=0.0, min_mass_mm=4.0, rival_fraction=0.3, low_confidence=0.1)
    p, bounds, pushes, deciding = near_tie(kind)
    answers = {(r.l3_found, r.slice_index, tuple(r.flags)) for r in (locate_l3(p + push * bounds, 1.0, rule) for push in pushes)}
    assert len(answers) == 2  # the bounds really allow two answers
    marked = uncertain_slices(p, bounds, 1.0, rule)
    assert marked[deciding].all()  # the run whose mass decides is marked whole
    assert not marked[:10].any() and not marked[31:50].any() and not marked[71:].any()  # and nothing off the runs


def test_weighty_runs_are_the_runs_the_rule_weighs_heaviest_first():
    from l3locator.locate import weighty_runs

    rule = LocateRule(smoothing_mm=0.0, threshold=0.5, min_mass_mm=5.0)
    p = np.zeros(40)
    p[2:5] = 0.9    # 3 slices, 8.1 mm of mass at 3 mm: kept
    p[10:21] = 0.8  # 11 slices, 26.4 mm: the heaviest
    p[30] = 0.9     # 1 slice, 2.7 mm: below min_mass_mm
    assert weighty_runs(p, 3.0, rule) == [((10, 20), 15), ((2, 4), 3)]
    assert locate_l3(p, 3.0, rule).slice_range == (10, 20)  # the first of them is the rule's answer
