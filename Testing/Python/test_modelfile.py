"""Model files: metadata round trip, safe loading, clear errors for bad files."""

import pickle

import pytest
import torch

from l3locator.errors import ModelFileError
from l3locator.modelfile import L3Model, load_model
from l3locator.preprocessing import PreprocessingConfig


@pytest.fixture(scope="module")
def tiny_model() -> L3Model:
    torch.manual_seed(0)
    model = L3Model.new("resnet18", PreprocessingConfig(input_size=32, channel_mode="neighbors"))
    model.provenance = {"data": {"cases": 3}, "design_parameters": {"learning_rate": 1e-3}}
    return model


def test_round_trip_keeps_weights_preprocessing_and_provenance(tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "m.pt")
    loaded = load_model(path)
    assert loaded.preprocessing == tiny_model.preprocessing
    assert loaded.provenance == tiny_model.provenance and loaded.arch == "resnet18"
    for key, value in tiny_model.network.state_dict().items():
        torch.testing.assert_close(loaded.network.state_dict()[key], value)
    assert loaded.name == "m.pt" and not loaded.network.training


def test_half_precision_file_is_smaller_and_loads_as_float32(tiny_model, tmp_path):
    full = tiny_model.save(tmp_path / "full.pt")
    half = tiny_model.save(tmp_path / "half.pt", half=True)
    assert half.stat().st_size < 0.6 * full.stat().st_size
    weight = load_model(half).network.conv1.weight
    assert weight.dtype == torch.float32
    torch.testing.assert_close(weight, tiny_model.network.conv1.weight, atol=1e-3, rtol=1e-3)


def test_save_refuses_to_overwrite_when_asked(tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "m.pt")
    with pytest.raises(FileExistsError):
        tiny_model.save(path, overwrite=False)


def test_missing_file(tmp_path):
    with pytest.raises(ModelFileError, match="not found"):
        load_model(tmp_path / "nope.pt")


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.pt"
    path.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(ModelFileError, match="broken.pt"):
        load_model(path)


def test_truncated_file(tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "m.pt")
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(ModelFileError):
        load_model(path)


def test_foreign_torch_file_is_rejected(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(ModelFileError, match="not an L3Locator model"):
        load_model(path)


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_not_executed(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"format": "l3locator-model", "x": _Exploit()}, handle)
    with pytest.raises(ModelFileError):
        load_model(path)
    assert "must never run" not in capsys.readouterr().out


def test_newer_format_version_and_wrong_weights(tiny_model, tmp_path):
    path = tiny_model.save(tmp_path / "m.pt")
    payload = torch.load(path, weights_only=True)
    torch.save({**payload, "format_version": 99}, tmp_path / "new.pt")
    with pytest.raises(ModelFileError, match="newer"):
        load_model(tmp_path / "new.pt")
    torch.save({**payload, "arch": "resnet50"}, tmp_path / "mismatch.pt")
    with pytest.raises(ModelFileError, match="incompatible"):
        load_model(tmp_path / "mismatch.pt")


def test_locate_rule_travels_with_the_model_and_old_files_get_the_default(tiny_model, tmp_path):
    from dataclasses import replace

    from l3locator.locate import LocateRule

    tuned = replace(tiny_model, locate_rule=LocateRule(threshold=0.9, smoothing_mm=3.0))
    path = tuned.save(tmp_path / "tuned.pt")
    assert load_model(path).locate_rule == LocateRule(threshold=0.9, smoothing_mm=3.0)
    payload = torch.load(path, weights_only=True)
    del payload["locate_rule"]
    torch.save(payload, tmp_path / "old.pt")
    assert load_model(tmp_path / "old.pt").locate_rule == LocateRule()
    for bad in ({"threshold": 1.5}, {"thresh": 0.9}):
        torch.save({**payload, "locate_rule": bad}, tmp_path / "bad.pt")
        with pytest.raises(ModelFileError, match="incompatible or damaged"):
            load_model(tmp_path / "bad.pt")


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_weights_are_refused_at_load_naming_the_file(tiny_model, tmp_path, bad):
    payload = torch.load(tiny_model.save(tmp_path / "m.pt"), weights_only=True)
    weights = dict(payload["state_dict"])
    weights["layer2.0.conv1.weight"] = weights["layer2.0.conv1.weight"].clone()
    weights["layer2.0.conv1.weight"][0, 0, 0, 0] = bad
    torch.save({**payload, "state_dict": weights}, tmp_path / "poisoned.pt")
    with pytest.raises(ModelFileError) as raised:
        load_model(tmp_path / "poisoned.pt")
    message = str(raised.value)
    assert "poisoned.pt" in message and "NaN or infinite" in message and "layer2.0.conv1.weight" in message and "\n" not in message


def test_weights_that_overflow_half_precision_are_refused_at_load(tiny_model, tmp_path):
    import copy
    from dataclasses import replace

    big = replace(tiny_model, network=copy.deepcopy(tiny_model.network))
    with torch.no_grad():
        big.network.fc.bias[1] = 1e6  # float16 tops out at 65504: stored as infinity
    assert load_model(big.save(tmp_path / "full.pt")).network.fc.bias[1] == 1e6
    with pytest.raises(ModelFileError, match="fc.bias"):
        load_model(big.save(tmp_path / "half.pt", half=True))
