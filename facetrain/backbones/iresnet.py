"""IResNet: the improved ResNet of ArcFace (Deng et al., CVPR 2019), as in insightface's arcface_torch recipes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facetrain.backbones.base import Backbone
from facetrain.backbones.sizes import conv_out

__all__ = ["IRESNET_LAYERS", "IBasicBlock", "IResNet"]

# blocks per stage of arcface_torch's iresnet18 ... iresnet200 (configs/backbone/iresnet*.yaml repeat them)
IRESNET_LAYERS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3), 50: (3, 4, 14, 3), 100: (3, 13, 30, 3), 200: (6, 26, 60, 6)}


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-5)


class IBasicBlock(nn.Module):
    """BN - conv3x3 - BN - PReLU - conv3x3(stride) - BN, plus a shortcut (1x1 conv + BN when shapes change)."""

    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            _bn(c_in), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
            _bn(c_out), nn.PReLU(c_out),
            nn.Conv2d(c_out, c_out, 3, stride=stride, padding=1, bias=False), _bn(c_out),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False), _bn(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.shortcut(x)


class IResNet(Backbone):
    """IResNet as in insightface `arcface_torch/backbones/iresnet.py`, with the FC input sized by the input.

    Stem conv3x3/1 + BN + PReLU (no max-pool), four stages at 64/128/256/512 channels each opened
    by a stride-2 block, then "output layer E": BN2d -> dropout -> flatten -> FC -> BN1d whose
    scale is fixed at 1. insightface hard-codes the FC input as 512*7*7 (112x112 crops); here each
    stride-2 conv maps n to ceil(n/2), so 112x112 -> 7x7, 112x96 -> 7x6, 128x128 -> 8x8.

    Parameters at 112x112, 512-d (the BN1d's fixed scale is not trainable, but is counted, as
    insightface's own count does): layers (3, 4, 14, 3) = IResNet-50, **43,590,848**;
    (3, 13, 30, 3) = IResNet-100, **65,156,160**.

    Args:
        embedding_dim: size of the embedding (512 in the ArcFace recipes).
        input_size: (height, width) of the crops (112x112 in the ArcFace recipes).
        layers: blocks per stage.
        in_channels: image channels.
        dropout: dropout before the FC (0 in arcface_torch; 0.4 in the MXNet recipes).
        conv_init_std: std of the conv weights' normal init (insightface uses 0.1).
        input_std: pixel divisor, (x - 127.5) / input_std: 128 as the other backbones, 127.5 as arcface_torch
            trained its released models ((x / 255 - 0.5) / 0.5).
    """

    def __init__(
        self,
        embedding_dim: int = 512,
        input_size: Sequence[int] = (112, 112),
        layers: Sequence[int] = (3, 4, 14, 3),
        in_channels: int = 3,
        dropout: float = 0.0,
        conv_init_std: float = 0.1,
        input_std: float = 128.0,
    ):
        super().__init__(embedding_dim, input_size, in_channels, input_std)
        self.layers = tuple(int(b) for b in layers)
        self.stem = nn.Sequential(nn.Conv2d(self.in_channels, 64, 3, padding=1, bias=False), _bn(64), nn.PReLU(64))
        stages, c_in, size = [], 64, self.input_size
        for c_out, blocks in zip((64, 128, 256, 512), layers, strict=True):
            stages.append(nn.Sequential(IBasicBlock(c_in, c_out, 2), *(IBasicBlock(c_out, c_out, 1)
                                                                        for _ in range(blocks - 1))))
            c_in, size = c_out, conv_out(size, 3, 2, 1)
        self.stages = nn.Sequential(*stages)
        self.feature_map = (c_in, *size)
        self.bn_map = _bn(c_in)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(c_in * size[0] * size[1], self.embedding_dim)
        self.bn_feature = nn.BatchNorm1d(self.embedding_dim, eps=1e-5)
        self._init(conv_init_std)

    def _init(self, conv_std: float) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0.0, conv_std)
        # the feature BN only centres and shifts: its scale stays 1 (insightface's fix_gamma)
        nn.init.ones_(self.bn_feature.weight)
        self.bn_feature.weight.requires_grad_(False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.bn_map(self.stages(self.stem(self.norm(images))))
        x = self.fc(self.dropout(torch.flatten(x, 1)))
        return self.bn_feature(x)
