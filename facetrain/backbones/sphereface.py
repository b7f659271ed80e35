"""SphereFace-20 (Liu et al., CVPR 2017, "SphereFace: Deep Hypersphere Embedding"; wy1iu/sphereface)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facetrain.backbones.base import Backbone
from facetrain.backbones.caffe_init import caffe_gaussian_, caffe_xavier_
from facetrain.backbones.face_resnet import FaceResUnit
from facetrain.backbones.sizes import conv_out

__all__ = ["SphereFace"]


class SphereFace(Backbone):
    """SphereFace-20: four stages of (3x3 stride-2 conv + PReLU, residual units), then fc5.

    Layout (`train/code/sphereface_model.prototxt`): conv1_1 3->64 with 1 unit, conv2_1 ->128 with
    2, conv3_1 ->256 with 4, conv4_1 ->512 with 1; 4 + 2*(1+2+4+1) = 20 convs. The units are
    Face-ResNet's (bias frozen at zero in Caffe, so none here); no pooling, no BatchNorm. Each
    stride-2 conv (pad 1) maps n to ceil(n/2): 112x96 -> 56x48 -> 28x24 -> 14x12 -> 7x6, so fc5
    reads 512*7*6 = 21,504 values (7x7 = 25,088 at 112x112; 8x8 = 32,768 at 128x128).

    Learnable parameters at 112x96, 512-d: convs 11,651,712 (stride-2 convs with bias 1,792 +
    73,856 + 295,168 + 1,180,160; residual convs 2*64*64*9 + 4*128*128*9 + 8*256*256*9 +
    2*512*512*9 = 10,100,736), PReLU slopes 4,672, fc5 11,010,560 = 21,504*512 + 512; total
    **22,666,944** (24,501,952 at 112x112, 28,434,112 at 128x128).

    Args:
        embedding_dim: size of fc5 (512 in the paper).
        input_size: (height, width) of the crops (112x96 in the paper).
        in_channels: image channels.
        units: residual units per stage ((1, 2, 4, 1) is SphereFace-20; the released SphereFace-64
            prototxt has (3, 7, 16, 3)).
        channels: the four stages' widths.
    """

    def __init__(
        self,
        embedding_dim: int = 512,
        input_size: Sequence[int] = (112, 96),
        in_channels: int = 3,
        units: Sequence[int] = (1, 2, 4, 1),
        channels: Sequence[int] = (64, 128, 256, 512),
    ):
        super().__init__(embedding_dim, input_size, in_channels)
        layers: list[nn.Module] = []
        size, c_in = self.input_size, self.in_channels
        for c_out, n_units in zip(channels, units, strict=True):
            down = nn.Conv2d(c_in, c_out, 3, stride=2, padding=1)
            caffe_xavier_(down.weight)
            nn.init.zeros_(down.bias)
            layers += [down, nn.PReLU(c_out)]
            layers += [FaceResUnit(c_out) for _ in range(n_units)]
            size, c_in = conv_out(size, 3, 2, 1), c_out
        self.features = nn.Sequential(*layers)
        for module in self.modules():
            if isinstance(module, FaceResUnit):
                for conv in module.body[0::2]:
                    caffe_gaussian_(conv.weight, 0.01)
        self.feature_map = (c_in, *size)
        self.fc5 = nn.Linear(c_in * size[0] * size[1], self.embedding_dim)
        caffe_xavier_(self.fc5.weight)
        nn.init.zeros_(self.fc5.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(self.norm(images))
        return self.fc5(torch.flatten(x, 1))
