"""The ResNets of :data:`~l3locator.choices.ARCHITECTURES`, built empty for loading saved weights.

Loading a model file needs the network's layers, not torchvision: ``import torchvision`` loads
every model, dataset and operator it has (``torch._dynamo`` included), about as long as
``import torch`` itself, which is most of a cold ``l3locator find`` beside torch. This module
defines the same networks as ``torchvision.models.resnet18`` / ``resnet50`` (ResNet v1.5: the
stride in the bottleneck's 3x3 convolution), with the same parameter and buffer names and the same
operations in the same order, so a torchvision state dict loads unchanged and gives bit-identical
outputs (``Testing/Python/test_modelfile.py`` checks both). :func:`empty_resnet` builds one on
PyTorch's ``meta`` device: no memory and no random initialisation, for ``load_state_dict(...,
assign=True)`` to fill with the file's tensors. New, randomly initialised networks (training)
still come from torchvision (:func:`l3locator.modelfile.build_network`).
"""

from __future__ import annotations

import torch
from torch import nn

#: Blocks per stage (layer1..layer4) and block type of each architecture.
LAYOUTS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
}


def _conv(inputs: int, outputs: int, kernel: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(inputs, outputs, kernel_size=kernel, stride=stride, padding=kernel // 2, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convolutions and a shortcut (ResNet18/34)."""

    expansion = 1

    def __init__(self, inputs: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv(inputs, planes, 3, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv(planes, planes, 3)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class Bottleneck(nn.Module):
    """1x1, strided 3x3 and 1x1 convolutions and a shortcut (ResNet50 and deeper, v1.5)."""

    expansion = 4

    def __init__(self, inputs: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv(inputs, planes, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv(planes, planes, 3, stride)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = _conv(planes, planes * self.expansion, 1)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out += identity
        return self.relu(out)


class ResNet(nn.Module):
    """Stem (7x7 convolution, max pooling), four stages, global average pooling, ``fc``."""

    def __init__(self, block: type[BasicBlock] | type[Bottleneck], blocks: tuple[int, int, int, int], num_classes: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        inputs = 64
        stages = []
        for index, (planes, count) in enumerate(zip((64, 128, 256, 512), blocks)):
            stride = 1 if index == 0 else 2
            downsample = None
            if stride != 1 or inputs != planes * block.expansion:
                downsample = nn.Sequential(_conv(inputs, planes * block.expansion, 1, stride), nn.BatchNorm2d(planes * block.expansion))
            layers = [block(inputs, planes, stride, downsample)]
            inputs = planes * block.expansion
            layers += [block(inputs, planes) for _ in range(1, count)]
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def empty_resnet(arch: str, num_classes: int) -> ResNet:
    """``arch`` (a key of :data:`LAYOUTS`) with ``num_classes`` outputs, its tensors on the
    ``meta`` device (no storage, no initialisation): load weights with ``assign=True``."""
    if arch not in LAYOUTS:
        raise ValueError(f"unknown architecture {arch!r}; choose one of {tuple(LAYOUTS)}")
    kind, blocks = LAYOUTS[arch]
    with torch.device("meta"):
        return ResNet(BasicBlock if kind == "basic" else Bottleneck, blocks, num_classes)
