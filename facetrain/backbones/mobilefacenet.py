"""MobileFaceNet (Chen et al. 2018): ~1 M parameters, inverted-residual bottlenecks and a global depthwise pooling."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facetrain.backbones.base import Backbone
from facetrain.backbones.sizes import conv_out

__all__ = ["MOBILEFACENET_BOTTLENECKS", "MobileFaceNet", "MobileFaceNetBottleneck"]

# (expansion t, output channels c, repeats n, first stride s): Chen et al. 2018, Table 1's bottleneck rows
MOBILEFACENET_BOTTLENECKS = ((2, 64, 5, 2), (4, 128, 1, 2), (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1))


def _conv(c_in: int, c_out: int, kernel: int | Sequence[int], stride: int = 1, groups: int = 1,
          act: bool = True) -> nn.Sequential:
    """conv (no bias) + BN, then PReLU unless `act` is false (the paper's "linear" layers)."""
    padding = kernel // 2 if isinstance(kernel, int) else 0
    layers = [nn.Conv2d(c_in, c_out, kernel, stride, padding, groups=groups, bias=False), nn.BatchNorm2d(c_out)]
    return nn.Sequential(*layers, nn.PReLU(c_out)) if act else nn.Sequential(*layers)


class MobileFaceNetBottleneck(nn.Module):
    """MobileNetV2's inverted residual (Sandler et al. 2018) with PReLU: 1x1 expand, 3x3 depthwise, linear 1x1
    projection; the input is added back when stride and width are unchanged."""

    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        self.body = nn.Sequential(_conv(c_in, hidden, 1), _conv(hidden, hidden, 3, stride, groups=hidden),
                                  _conv(hidden, c_out, 1, act=False))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.residual else self.body(x)


class MobileFaceNet(Backbone):
    """MobileFaceNet, Chen et al. 2018, Table 1, at any input size.

    conv3x3/2 64 -> depthwise conv3x3 64 -> bottlenecks (t, c, n, s) = (2, 64, 5, 2), (4, 128, 1, 2),
    (2, 128, 6, 1), (4, 128, 1, 2), (2, 128, 2, 1) -> conv1x1 512 -> linear GDConv (a depthwise conv whose
    kernel is the whole final map: 7x7 at 112x112, 7x6 at 112x96) -> linear 1x1 conv to the embedding
    (a bias-free FC on the 512 pooled values) -> BN. Every non-linear layer is BN + PReLU (the paper's §3.2).

    Parameters at 112x112 with a 128-d embedding: **1,003,136** trainable (BN scales and shifts
    included, running statistics excluded), as insightface arcface_torch's `MobileFaceNet(blocks=(1, 4, 6,
    2), scale=1, num_features=128)` counts. The paper's "0.99M" is the deploy-time count: folding each
    of the 9,792 BN channels' scale and shift into its conv leaves one bias per channel, 993,344.

    Args:
        embedding_dim: size of the embedding (128 in the paper).
        input_size: (height, width) of the crops (112x112 in the paper).
        bottlenecks: (t, c, n, s) rows, the paper's by default.
        in_channels: image channels.
        input_std: pixel divisor, (x - 127.5) / input_std.
    """

    def __init__(
        self,
        embedding_dim: int = 128,
        input_size: Sequence[int] = (112, 112),
        bottlenecks: Sequence[Sequence[int]] = MOBILEFACENET_BOTTLENECKS,
        in_channels: int = 3,
        input_std: float = 128.0,
    ):
        super().__init__(embedding_dim, input_size, in_channels, input_std)
        layers = [_conv(self.in_channels, 64, 3, stride=2), _conv(64, 64, 3, groups=64)]
        size, c_in = conv_out(self.input_size, 3, 2, 1), 64
        for t, c, n, s in bottlenecks:
            for i in range(int(n)):
                stride = int(s) if i == 0 else 1
                layers.append(MobileFaceNetBottleneck(c_in, int(c), stride, int(t)))
                c_in, size = int(c), conv_out(size, 3, stride, 1)
        layers.append(_conv(c_in, 512, 1))
        self.features = nn.Sequential(*layers)
        self.feature_map = (512, *size)
        self.gdconv = _conv(512, 512, size, groups=512, act=False)  # global depthwise: one weight per map position
        self.fc = nn.Linear(512, self.embedding_dim, bias=False)  # the paper's linear 1x1 conv on a 1x1 map
        self.bn_feature = nn.BatchNorm1d(self.embedding_dim)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.gdconv(self.features(self.norm(images)))
        return self.bn_feature(self.fc(torch.flatten(x, 1)))
