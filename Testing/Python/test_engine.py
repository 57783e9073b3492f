"""The inference engine: device choice, precision names, the network call, the batched scoring
loop (progress, cancel, order), the exhaustive reference, and non-finite probabilities."""

import numpy as np
import pytest
import torch

from conftest import synthetic_volume
from l3locator.engine import (
    Cancelled,
    ScanSlices,
    SliceClassifier,
    default_batch_size,
    pick_device,
    resolve_precision,
    score_slices,
    score_volume,
)
from l3locator.errors import InputError, ModelFileError
from l3locator.modelfile import L3Model
from l3locator.preprocessing import PreprocessingConfig, preprocess_volume

pytestmark = pytest.mark.usefixtures("one_thread")


class ChannelNet(torch.nn.Module):
    """Logits ``[0, 8 * (mean(c1) - 0.5) + 4 * (mean(c0) - mean(c2))]``, one per input on its own
    (so batching cannot change it), reading all three channels (so 2.5D neighbours matter)."""

    def __init__(self, poison: float | None = None) -> None:
        super().__init__()
        self.poison = poison
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += len(x)
        means = x.mean(dim=(2, 3))
        logit = 8.0 * (means[:, 1] - 0.5) + 4.0 * (means[:, 0] - means[:, 2])
        if self.poison is not None:
            logit = logit + self.poison
        return torch.stack((torch.zeros_like(logit), logit), dim=1)


def channel_model(channel_mode: str = "neighbors", poison: float | None = None) -> L3Model:
    config = PreprocessingConfig(input_size=16, channel_mode=channel_mode, neighbor_offset_mm=10.0)
    return L3Model(ChannelNet(poison), config, arch="channel-net", source="/models/channel-net.pt")


@pytest.fixture(scope="module")
def volume():
    return synthetic_volume(30, (10, 15), thickness=2.5, seed=1)


# --- device and precision -------------------------------------------------------------------------


def test_unknown_devices_are_one_clear_input_error():
    for bad in ("banana", "mps", "meta", ""):
        with pytest.raises(InputError) as raised:
            pick_device(bad)
        assert str(raised.value) == f"unknown device {bad!r} (use cpu or cuda)"
    assert pick_device("cpu") == torch.device("cpu")


def test_cuda_without_a_gpu_is_an_input_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for asked in ("cuda", "cuda:0", torch.device("cuda")):
        with pytest.raises(InputError, match="no CUDA GPU is available") as raised:
            pick_device(asked)
        assert "\n" not in str(raised.value)
    assert pick_device(None) == torch.device("cpu")  # no device asked: the CPU, quietly


def test_a_gpu_index_beyond_the_machine_is_an_input_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert pick_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(InputError, match="has 2 CUDA GPU"):
        pick_device("cuda:2")


def test_auto_precision_is_fp32_off_cpu_and_validated():
    assert resolve_precision("auto", torch.device("cuda")) == "fp32"
    assert resolve_precision("auto", torch.device("cpu")) in ("mixed", "fp32")
    assert resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(ValueError, match="precision"):
        resolve_precision("fp8", torch.device("cpu"))
    for strategy in ("auto", "mixed"):  # strategies, not what one network call runs at
        with pytest.raises(ValueError, match="precision"):
            SliceClassifier(L3Model.new("resnet18"), "cpu", strategy)


def test_batch_size_shrinks_with_the_input_on_a_cpu():
    cpu = torch.device("cpu")
    assert default_batch_size(224, cpu, "fp32") == default_batch_size(224, cpu, "bf16") == 8
    assert default_batch_size(128, cpu, "bf16") == 32 and default_batch_size(128, cpu, "fp32") == 8
    assert default_batch_size(224, torch.device("cuda"), "fp32") == 64


def test_classifier_leaves_the_network_weights_untouched():
    model = L3Model.new("resnet18", PreprocessingConfig(input_size=32))
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    SliceClassifier(model, "cpu", "bf16")(torch.rand(2, 3, 32, 32))
    after = model.network.state_dict()
    assert all(torch.equal(before[k], after[k]) and before[k].is_contiguous() == after[k].is_contiguous() for k in before)


# --- the scoring loop -----------------------------------------------------------------------------


def test_scoring_loop_reports_progress_per_batch_and_keeps_the_order(volume):
    model = channel_model()
    classify = SliceClassifier(model, "cpu", "fp32", channels_last=False)
    seen = []
    forward = score_slices(classify, ScanSlices.of_volume(volume, model.preprocessing), np.arange(30), batch_size=8,
                           progress=lambda done, total: seen.append((done, total)))
    assert seen == [(8, 30), (16, 30), (24, 30), (30, 30)]
    backward = score_slices(classify, ScanSlices.of_volume(volume, model.preprocessing), np.arange(30)[::-1], batch_size=7)
    np.testing.assert_allclose(backward[::-1], forward, rtol=0, atol=1e-6)
    assert forward[10:16].min() > forward[:8].max()  # the bigger bone square of the "L3" slices


def test_cancel_is_polled_before_each_batch(volume):
    model = channel_model()
    polls = []
    with pytest.raises(Cancelled):
        score_slices(SliceClassifier(model, "cpu"), ScanSlices.of_volume(volume, model.preprocessing), np.arange(30), batch_size=8,
                     should_cancel=lambda: polls.append(1) or len(polls) > 2)
    assert model.network.calls == 16  # two batches ran, the third was never started


@pytest.mark.parametrize("channel_mode", ["neighbors", "repeat"])
def test_exhaustive_reference_is_the_engine_loop_over_every_slice(volume, channel_mode):
    model = channel_model(channel_mode)
    reference = score_volume(model, volume, batch_size=8)
    assert reference.shape == (30,) and reference.dtype == np.float64
    # the same loop over slices preprocessed all at once: preprocessing on first use (with the
    # 2.5D neighbours) gives the same inputs
    ready = ScanSlices(model.preprocessing, volume.slice_thickness, volume.superior_step, images=preprocess_volume(volume, model.preprocessing))
    eager = score_slices(SliceClassifier(model, "cpu", "fp32", channels_last=False), ready, np.arange(30), batch_size=8)
    np.testing.assert_array_equal(reference, eager)
    # any subset, in any order and batch size, scores each slice as the reference does
    order = np.random.default_rng(3).permutation(30)[:17]
    some = score_slices(SliceClassifier(model, "cpu", "fp32"), ScanSlices.of_volume(volume, model.preprocessing), order, batch_size=5)
    np.testing.assert_allclose(some, reference[order], rtol=0, atol=1e-6)


def test_scan_slices_take_either_a_stack_or_ready_images(volume):
    config = PreprocessingConfig(input_size=16)
    with pytest.raises(ValueError):
        ScanSlices(config, 2.5)
    with pytest.raises(ValueError):
        ScanSlices(config, 2.5, hu_stack=volume.axial_stack(), images=preprocess_volume(volume, config))


# --- non-finite probabilities ---------------------------------------------------------------------


@pytest.mark.parametrize("poison", [float("nan"), float("inf")])
def test_a_network_giving_non_finite_probabilities_is_refused_not_passed_on(volume, poison):
    model = channel_model(poison=poison)
    with pytest.raises(ModelFileError, match="non-finite") as raised:
        score_volume(model, volume)
    assert "channel-net.pt" in str(raised.value) and "\n" not in str(raised.value)
    # training validation asks for the values as they are: a diverged trial scores as a failure
    classify = SliceClassifier(model, "cpu", "fp32", allow_non_finite=True)
    values = score_slices(classify, ScanSlices.of_volume(volume, model.preprocessing), np.arange(4))
    assert not np.isfinite(values).all()
