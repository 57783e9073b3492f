"""Loading a model file builds the network without torchvision, and it is torchvision's network:
same parameter names, bit-identical outputs; the file is not held open afterwards."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from l3locator.choices import ARCHITECTURES
from l3locator.modelfile import L3Model, build_network, load_model
from l3locator.preprocessing import PreprocessingConfig
from l3locator.resnet import LAYOUTS, empty_resnet


def test_every_architecture_has_a_layout():
    assert set(LAYOUTS) == set(ARCHITECTURES)
    with pytest.raises(ValueError, match="unknown architecture"):
        empty_resnet("vgg16", 2)


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_the_empty_network_takes_torchvision_weights_and_gives_identical_outputs(arch, one_thread):
    torch.manual_seed(1)
    reference = build_network(arch).eval()
    with torch.no_grad():  # non-trivial batch-norm statistics, so a swapped buffer would show
        for module in reference.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    network = empty_resnet(arch, 2)
    assert list(network.state_dict()) == list(reference.state_dict())
    network.load_state_dict({k: v.clone() for k, v in reference.state_dict().items()}, assign=True)
    network.eval()
    assert not any(t.is_meta for t in (*network.parameters(), *network.buffers()))
    x = torch.rand(2, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(network(x), reference(x))
        channels_last = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(network(channels_last), reference(channels_last))


def test_loading_imports_no_torchvision_and_keeps_the_weights_trainable(tmp_path):
    path = L3Model.new("resnet18", PreprocessingConfig(input_size=32)).save(tmp_path / "m.pt", half=True)
    code = ("import sys; from l3locator.modelfile import load_model; m = load_model(sys.argv[1]); "
            "assert 'torchvision' not in sys.modules, 'torchvision imported'; "
            "assert all(p.requires_grad and p.dtype.is_floating_point for p in m.network.parameters())")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True, capture_output=True, text=True)


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs /proc/self/maps (Linux)")
@pytest.mark.parametrize("half", [False, True])
def test_the_loaded_model_owns_its_weights_and_leaves_the_file_unmapped(tmp_path, half):
    path = L3Model.new("resnet18", PreprocessingConfig(input_size=32)).save(tmp_path / "m.pt", half=half)
    model = load_model(path)
    assert str(path) not in Path("/proc/self/maps").read_text()  # the memory map is gone: the file can be replaced or deleted
    assert all(p.dtype == torch.float32 for p in model.network.parameters())
