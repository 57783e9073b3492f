"""Coarse-to-fine scoring gives the exhaustive answer, says which slices it scored, and can be switched off.

A meaningful model without training: ``OracleNet`` looks each input up among the network inputs
of one phantom (nearest neighbour on an 8x8 thumbnail) and returns a probability curve made from
the phantom's vertebra labels: high on L3, a shoulder on L2 and L4, and low noise with a few
spikes elsewhere, like a trained model's. The fast path must reproduce the exhaustive answer.
"""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter1d

from l3locator.cli import main
from l3locator.engine import Cancelled, score_volume
from l3locator.fast_scoring import (
    SamplingPlan,
    coarse_step_slices,
    expected_walk,
    fill_unscored,
    influence,
    run_windows,
    score_coarse_to_fine,
    suspicious_neighbours,
)
from l3locator.locate import LocateRule, find_runs, smooth
from l3locator.modelfile import L3Model, load_model
from l3locator.phantoms import generate_phantom
from l3locator.phantoms.writing import write_nifti
from l3locator.pipeline import find_l3, result_from_probabilities
from l3locator.preprocessing import PreprocessingConfig, assemble_inputs, preprocess_volume
from l3locator.volume import CTVolume

THUMB = 8


def thumbnails(inputs: torch.Tensor) -> torch.Tensor:
    """``[B, 3 * THUMB * THUMB]`` float32 fingerprints of network inputs."""
    return F.adaptive_avg_pool2d(inputs.float(), THUMB).flatten(1)


class OracleNet(torch.nn.Module):
    """Logits ``[0, logit(p)]`` where ``p`` is the stored probability of the nearest known input.

    Under bfloat16 autocast the L3 logit is shifted by ``bf16_drift``, a stand-in for the
    numeric drift of a real network, so tests can see which slices were scored in which precision.
    """

    def __init__(self, keys: torch.Tensor, probabilities: np.ndarray, bf16_drift: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("keys", keys)
        p = torch.as_tensor(np.clip(probabilities, 1e-6, 1 - 1e-6), dtype=torch.float64)
        self.register_buffer("logits", torch.log(p / (1 - p)).float())
        self.bf16_drift = bf16_drift
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += len(x)
        distance = ((thumbnails(x)[:, None, :] - self.keys[None]) ** 2).sum(-1)
        logit = self.logits[distance.argmin(1)]
        if torch.is_autocast_enabled("cpu"):
            logit = logit + self.bf16_drift
        return torch.stack((torch.zeros_like(logit), logit), dim=1)


def label_curve(phantom, seed: int) -> np.ndarray:
    """A trained-model-like L3 probability per slice from the phantom's truth."""
    n = phantom.volume.num_slices
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.0, 0.12, n)
    spikes = rng.choice(n, size=max(1, n // 60), replace=False)
    p[spikes] = rng.uniform(0.3, 0.7, len(spikes))
    for level, value in (("L2", 0.35), ("L4", 0.3), ("L3", 0.97)):
        if level in phantom.body_ranges:
            first, last = phantom.body_ranges[level]
            p[first : last + 1] = np.maximum(p[first : last + 1], value)
    return np.clip(gaussian_filter1d(p, 0.7), 0.0, 1.0)


def oracle_model(volume, curve: np.ndarray, config: PreprocessingConfig, bf16_drift: float = 0.0) -> L3Model:
    slices = preprocess_volume(volume, config)
    inputs = assemble_inputs(slices, np.arange(volume.num_slices), config, volume.slice_thickness, volume.superior_step)
    return L3Model(OracleNet(thumbnails(inputs), curve, bf16_drift).eval(), config, arch="oracle", source="oracle")


CASES = [
    # (seed, extent, slice thickness mm, channel mode, superior_first)
    (11, "abdomen", 1.25, "repeat", False),
    (12, "whole_body", 2.5, "repeat", False),
    (13, "abdomen", 1.0, "neighbors", True),
    (14, "l3_edge", 1.25, "repeat", False),
    (15, "chest", 1.25, "repeat", False),
]


@pytest.fixture(scope="module", params=CASES, ids=lambda c: f"{c[1]}-{c[2]}mm-{c[3]}{'-headfirst' if c[4] else ''}")
def case(request):
    seed, extent, thickness, mode, superior_first = request.param
    phantom = generate_phantom(seed, shape_ij=(48, 48), slice_thickness_mm=thickness, extent=extent, superior_first=superior_first)
    config = PreprocessingConfig(input_size=32, channel_mode=mode)
    curve = label_curve(phantom, seed)
    return phantom.volume, oracle_model(phantom.volume, curve, config), curve


def test_fast_path_gives_the_exhaustive_answer(case):
    volume, model, curve = case
    reference = find_l3(volume, model, exhaustive=True)
    np.testing.assert_allclose(reference.slice_probabilities, curve, atol=1e-5)  # the oracle is exact
    model.network.calls = 0
    fast = find_l3(volume, model)
    assert (fast.l3_found, fast.l3_slice_index, fast.l3_slice_range, fast.flags) == (
        reference.l3_found, reference.l3_slice_index, reference.l3_slice_range, reference.flags)
    assert fast.confidence == pytest.approx(reference.confidence, abs=1e-6)
    # bookkeeping: scored_slices lists each slice the network saw, once
    assert fast.scored_slices is not None and fast.scored_slices == sorted(set(fast.scored_slices))
    scoring = fast.extra["scoring"]
    assert len(fast.scored_slices) == scoring["slices_scored"]
    assert model.network.calls == scoring["slices_scored"] + scoring["slices_rescored_fp32"]
    assert len(fast.scored_slices) < 0.6 * volume.num_slices
    scored = np.asarray(fast.scored_slices)
    np.testing.assert_allclose(np.asarray(fast.slice_probabilities)[scored], curve[scored], atol=1e-5)


def test_unscored_slices_are_interpolated_between_unsuspicious_neighbours(case):
    volume, model, curve = case
    plan = SamplingPlan()
    result = score_coarse_to_fine(model, volume, precision="fp32")
    known = np.flatnonzero(result.scored)
    step = coarse_step_slices(volume.slice_thickness, plan)
    assert known[0] == 0 and known[-1] == volume.num_slices - 1
    for before, after in zip(known[:-1], known[1:]):
        if after - before > 1:  # a gap: short, and both ends below the suspicion level
            assert after - before <= step
            assert curve[before] < plan.suspicion and curve[after] < plan.suspicion
    np.testing.assert_allclose(result.probabilities, fill_unscored(curve, result.scored), atol=1e-5)


def test_mixed_precision_rescores_the_unsaturated_window_slices_in_fp32(case):
    volume, model, curve = case
    drifting = L3Model(OracleNet(model.network.keys, curve, bf16_drift=1.0).eval(), model.preprocessing, arch="oracle")
    reference = find_l3(volume, drifting, exhaustive=True)
    mixed = score_coarse_to_fine(drifting, volume, precision="mixed", plan=SamplingPlan(bf16_logit_error=1.01))  # bounds the drift
    assert mixed.precision == "mixed"
    # every scored slice is float32's where rescored, and the drifted bf16 value elsewhere
    fp32 = np.asarray(reference.slice_probabilities)
    bf16 = 1.0 / (1.0 + (1.0 - fp32) / fp32 / np.e)
    expected = np.where(mixed.rescored, fp32, bf16)
    np.testing.assert_allclose(mixed.probabilities[mixed.scored], expected[mixed.scored], atol=1e-5)
    answer = result_from_probabilities(volume, mixed.probabilities, model_name="oracle", seconds=0.0)
    assert (answer.l3_slice_index, answer.l3_slice_range, answer.flags) == (reference.l3_slice_index, reference.l3_slice_range, reference.flags)
    if reference.l3_found:  # the drift matters: bf16 alone moves the run's edges
        assert mixed.rescored.any()
        assert find_l3(volume, drifting, precision="bf16").l3_slice_range != reference.l3_slice_range


def test_small_bf16_drift_is_certified_without_an_fp32_pass_and_gives_the_same_answer(case):
    volume, model, curve = case
    steady = L3Model(OracleNet(model.network.keys, curve, bf16_drift=0.1).eval(), model.preprocessing, arch="oracle")
    reference = find_l3(volume, steady, exhaustive=True)
    answer = find_l3(volume, steady, precision="mixed")
    assert (answer.l3_slice_index, answer.l3_slice_range, answer.flags) == (reference.l3_slice_index, reference.l3_slice_range, reference.flags)
    trusting = score_coarse_to_fine(steady, volume, precision="mixed", plan=SamplingPlan(bf16_logit_error=0.0))
    assert not trusting.rescored.any()  # a zero bound always certifies
    careful = score_coarse_to_fine(steady, volume, precision="mixed", plan=SamplingPlan(bf16_logit_error=5.0))
    if careful.strategy == "coarse-to-fine" and reference.l3_found:
        assert careful.rescored.any()  # a huge bound certifies nothing near a run


def test_exhaustive_switch_scores_every_slice_in_fp32(case):
    volume, model, _ = case
    model.network.calls = 0
    result = find_l3(volume, model, exhaustive=True)
    assert result.scored_slices is None and model.network.calls == volume.num_slices
    assert result.extra["scoring"] == {"strategy": "exhaustive", "precision": "fp32", "slices_scored": volume.num_slices, "slices_rescored_fp32": 0}
    np.testing.assert_array_equal(result.slice_probabilities, score_volume(model, volume))


def test_influence_is_the_bound_times_the_heaviest_weight_to_an_uncertain_value():
    uncertain = np.zeros(20, dtype=bool)
    uncertain[[5, 8]] = True
    bounds = np.full(20, 0.5)
    bounds[9] = 0.0  # an exact (float32) slice moves nothing
    weights = np.array([0.4, 0.2, 0.1])
    expected = 0.5 * np.array([0, 0, 0, 0.1, 0.2, 0.4, 0.2, 0.2, 0.4, 0, 0.1, 0, 0, 0, 0, 0, 0, 0, 0, 0])
    expected[9] = 0.0
    np.testing.assert_allclose(influence(uncertain, bounds, weights), expected)
    assert not influence(np.zeros(20, dtype=bool), bounds, weights).any()


def test_windows_reach_past_each_run_and_suspicion_reaches_the_neighbours():
    p = np.zeros(300)
    p[100:130] = 0.95
    p[250] = 0.3
    scored = np.zeros(300, dtype=bool)
    scored[::8] = True
    scored[100:130] = True
    (first, last), = find_runs(smooth(fill_unscored(p, scored), 1.0) >= 0.5)
    windows = run_windows(p, scored, 1.0, 12, LocateRule())
    np.testing.assert_array_equal(np.flatnonzero(windows), np.arange(first - 13, last + 14))
    assert not suspicious_neighbours(p, scored, 0.25)[[249, 251]].any()  # 250 is not scored: its value is not evidence
    scored[250] = True
    np.testing.assert_array_equal(np.flatnonzero(suspicious_neighbours(p, scored, 0.25) & ~windows), [249, 251])


def test_suspicion_is_followed_to_the_first_slices_below_it_each_way():
    p = np.zeros(100)
    p[37:45] = 0.4  # evidence between two coarse samples (32 and 48), seen by one of them
    scored = np.zeros(100, dtype=bool)
    scored[::8] = True
    while (missing := suspicious_neighbours(p, scored, 0.25) & ~scored).any():
        scored |= missing
    np.testing.assert_array_equal(np.flatnonzero(scored), sorted({*range(0, 100, 8), *range(36, 46)}))


def test_coarse_step_samples_the_shortest_l3_twice():
    assert coarse_step_slices(1.0) == 12 and coarse_step_slices(2.5) == 4 and coarse_step_slices(5.0) == 2
    assert coarse_step_slices(0.625) == 19 and coarse_step_slices(12.0 / 5.0) == 5
    for thickness in (0.5, 0.625, 1.0, 1.25, 2.0, 2.5, 3.0, 5.0):
        assert 2 * coarse_step_slices(thickness) * thickness <= 25.0


def test_short_scans_are_scored_in_full_in_order():
    phantom = generate_phantom(5, shape_ij=(32, 32), slice_thickness_mm=5.0, extent="abdomen")
    volume = CTVolume(np.ascontiguousarray(phantom.volume.voxels[:20]), phantom.volume.ijk_to_ras)  # 100 mm
    model = L3Model.new("resnet18", PreprocessingConfig(input_size=32))
    seen = []
    result = find_l3(volume, model, batch_size=8, progress=lambda done, total: seen.append((done, total)))
    n = volume.num_slices
    assert result.scored_slices is None and result.extra["scoring"]["strategy"] == "every-slice"
    assert seen == [(min(n, d), n) for d in range(8, n + 8, 8)]


def test_a_short_thin_sliced_scan_without_evidence_is_sampled_not_scored_in_full():
    # 70 mm in 0.5 mm slices (a spine crop read finely): whether L3 is there is not assumed up front;
    # with no L3-like evidence the coarse samples settle it
    phantom = generate_phantom(5, shape_ij=(32, 32), slice_thickness_mm=0.5, extent="abdomen")
    volume = CTVolume(np.ascontiguousarray(phantom.volume.voxels[:140]), phantom.volume.ijk_to_ras)
    model = constant_model(0.02)
    calls = counting(model)
    curve = score_coarse_to_fine(model, volume, rule=model.locate_rule, precision="fp32")
    assert curve.strategy == "coarse-to-fine" and sum(k for _, k in calls) == curve.scored.sum() < volume.num_slices / 4
    reference = find_l3(volume, model, exhaustive=True)
    fast = find_l3(volume, model, precision="fp32")
    assert (fast.l3_slice_index, fast.flags) == (reference.l3_slice_index, reference.flags)


def test_progress_grows_to_the_planned_total_and_cancel_stops(case):
    volume, model, _ = case
    seen = []
    score_coarse_to_fine(model, volume, batch_size=16, progress=lambda done, total: seen.append((done, total)))
    assert seen[-1][0] == seen[-1][1] and all(d <= t for d, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    with pytest.raises(Cancelled):
        score_coarse_to_fine(model, volume, should_cancel=lambda: True)


def test_cli_exhaustive_flag(tmp_path, capsys, monkeypatch):
    phantom = generate_phantom(7, shape_ij=(32, 32), slice_thickness_mm=2.5, extent="abdomen")
    scan = write_nifti(phantom.volume, tmp_path / "scan.nii.gz")
    model_file = L3Model.new("resnet18", PreprocessingConfig(input_size=32)).save(tmp_path / "m.pt")
    assert main(["find", str(scan), "--model", str(model_file), "--json", "--exhaustive"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["scoring"]["strategy"] == "exhaustive" and printed["scored_slices"] is None
    assert main(["find", str(scan), "--model", str(model_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scoring"]["strategy"] != "exhaustive"
    import l3locator.pipeline

    switches = []
    read_and_find = l3locator.pipeline.read_and_find_l3
    monkeypatch.setattr(l3locator.pipeline, "read_and_find_l3", lambda *a, **kw: switches.append(kw["exhaustive"]) or read_and_find(*a, **kw))
    output = tmp_path / "out.csv"
    for extra in (["--exhaustive"], []):
        assert main(["batch", str(scan), "--model", str(model_file), "--output", str(output), *extra]) == 0
    assert switches == [True, False]


def constant_model(probability: float) -> L3Model:
    """A network that gives every slice the L3 probability ``probability`` (zero weights, a bias)."""
    model = L3Model.new("resnet18", PreprocessingConfig(input_size=32))
    with torch.no_grad():
        model.network.fc.weight.zero_()
        model.network.fc.bias.copy_(torch.tensor([0.0, float(np.log(probability / (1.0 - probability)))]))
    return model


def counting(model: L3Model) -> list[tuple[str, int]]:
    """Record ``(precision, slices)`` of every network call of ``model``."""
    calls = []
    model.network.register_forward_hook(lambda _, inputs, __: calls.append(("bf16" if torch.is_autocast_enabled("cpu") else "fp32", len(inputs[0]))))
    return calls


def test_an_uncertain_profile_switches_to_every_slice_in_fp32_after_the_coarse_pass():
    # every slice at the threshold (0.9): sampling would re-score everything in float32 anyway
    phantom = generate_phantom(21, shape_ij=(48, 48), slice_thickness_mm=1.0, extent="abdomen")
    volume, model = phantom.volume, constant_model(0.9)
    reference = find_l3(volume, model, exhaustive=True)
    calls = counting(model)
    plan = SamplingPlan()
    curve = score_coarse_to_fine(model, volume, rule=model.locate_rule, plan=plan, precision="mixed")
    n, coarse = volume.num_slices, len(range(0, volume.num_slices, coarse_step_slices(volume.slice_thickness, plan))) + 1
    assert curve.strategy == "switched-to-every-slice" and curve.complete and curve.precision == "mixed"
    # the coarse samples in bf16, then every slice once in fp32: never both a refinement and a full pass
    assert sum(k for p, k in calls if p == "bf16") == coarse and sum(k for p, k in calls if p == "fp32") == n
    assert curve.rescored.sum() == coarse and curve.summary()["slices_scored"] == n
    np.testing.assert_allclose(curve.probabilities, reference.slice_probabilities, atol=1e-5)
    fast = find_l3(volume, model, precision="mixed")
    assert fast.extra["scoring"]["strategy"] == "switched-to-every-slice" and fast.scored_slices is None
    assert (fast.l3_slice_index, fast.l3_slice_range, fast.flags) == (reference.l3_slice_index, reference.l3_slice_range, reference.flags)


def test_a_certain_profile_keeps_sampling_in_mixed_precision_and_switches_in_fp32(always_l3):
    # every slice saturated at L3: bfloat16 screening certifies itself (no float32 work), which is
    # cheaper than one float32 pass; in float32 the refinement would score nearly every slice anyway
    phantom = generate_phantom(22, shape_ij=(48, 48), slice_thickness_mm=1.0, extent="abdomen")
    model = load_model(always_l3)
    mixed = score_coarse_to_fine(model, phantom.volume, rule=model.locate_rule, precision="mixed")
    assert mixed.strategy == "coarse-to-fine" and not mixed.rescored.any()
    fp32 = score_coarse_to_fine(model, phantom.volume, rule=model.locate_rule, precision="fp32")
    assert fp32.strategy == "switched-to-every-slice" and fp32.complete and not fp32.rescored.any()


def test_expected_walk_covers_gaps_by_their_suspicious_ends():
    p = np.zeros(40)
    scored = np.zeros(40, dtype=bool)
    scored[::10] = True
    scored[39] = True
    p[[10, 20]] = 0.5  # the gap 10-20 walked through; half of 0-10 and of 20-30 from one end
    np.testing.assert_array_equal(np.flatnonzero(expected_walk(p, scored, 0.25)), [*range(5, 10), *range(11, 20), *range(21, 25)])
    assert not expected_walk(np.zeros(40), scored, 0.25).any()


def test_sampling_plan_refuses_a_bf16_cost_outside_0_1():
    for bad in (0.0, 1.5, -1.0):
        with pytest.raises(ValueError, match="bf16_cost"):
            SamplingPlan(bf16_cost=bad)
