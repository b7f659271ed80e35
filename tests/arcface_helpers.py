"""An arcface_torch-shaped IResNet written here from its published key names and forward order (helpers, no tests).

Attribute names as insightface's `recognition/arcface_torch/backbones/iresnet.py` has them: conv1, bn1,
prelu, layer1..4 of blocks (bn1, conv1, bn2, prelu, conv2 with the stride, bn3, downsample.0/.1), bn2,
dropout, fc, features; input (x / 255 - 0.5) / 0.5.
"""

from __future__ import annotations

import torch
from torch import nn


class ArcBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(c_in), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False)
        self.bn2, self.prelu = nn.BatchNorm2d(c_out), nn.PReLU(c_out)
        self.conv2, self.bn3 = nn.Conv2d(c_out, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        return out + (x if self.downsample is None else self.downsample(x))


class ArcIResNet(nn.Module):
    """`side` is the last feature map's side: 7 for arcface_torch's 112x112 models."""

    def __init__(self, layers=(2, 1, 1, 1), dim: int = 16, side: int = 7):
        super().__init__()
        self.conv1, self.bn1, self.prelu = nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64)
        c_in = 64
        for k, (c_out, n) in enumerate(zip((64, 128, 256, 512), layers, strict=True), 1):
            setattr(self, f"layer{k}", nn.Sequential(*[ArcBlock(c_in if j == 0 else c_out, c_out, 2 if j == 0 else 1)
                                                       for j in range(n)]))
            c_in = c_out
        self.bn2, self.dropout = nn.BatchNorm2d(512), nn.Dropout(0.0)
        self.fc, self.features = nn.Linear(512 * side * side, dim), nn.BatchNorm1d(dim)
        self.side = side
        with torch.no_grad():  # every BN and PReLU away from its init, so a wrong mapping shows in the outputs
            for m in self.modules():
                if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
                    m.weight.uniform_(0.5, 1.5), m.bias.uniform_(-0.2, 0.2)
                    m.running_mean.uniform_(-0.2, 0.2), m.running_var.uniform_(0.5, 2.0)
                elif isinstance(m, nn.PReLU):
                    m.weight.uniform_(0.0, 0.5)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        x = (pixels.float() / 255 - 0.5) / 0.5
        x = self.prelu(self.bn1(self.conv1(x)))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.features(self.fc(self.dropout(torch.flatten(self.bn2(x), 1))))
