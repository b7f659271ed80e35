"""SmallFaceCNN: a compact conv net that trains in minutes on CPU, for the demo and the tests."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facetrain.backbones.base import Backbone

__all__ = ["SmallFaceCNN"]


def _conv_bn_prelu(c_in: int, c_out: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.PReLU(c_out),
    )


class SmallFaceCNN(Backbone):
    """Stages of (stride-2 conv, conv), each with BN + PReLU, then flatten and FC to the embedding.

    Flattening (not global pooling) keeps where on the face a pattern is, as Face-ResNet's fc5 does.

    Args:
        embedding_dim: size of the output embedding.
        input_size: (height, width) of the input crops; the FC input follows from it.
        channels: output channels of each stage; each stage halves the resolution.
        feature_bn: batch-normalize the embedding (Face-ResNet's fc5 has no such layer, so
            feature norms stay free to vary with image quality, as Ranjan et al. 2017, fig. 1 shows).
        in_channels: image channels (3 for colour faces, 1 for grey digits).
    """

    def __init__(
        self,
        embedding_dim: int = 128,
        input_size: Sequence[int] = (112, 96),
        channels: Sequence[int] = (16, 32, 64, 128),
        feature_bn: bool = False,
        in_channels: int = 3,
    ):
        super().__init__(embedding_dim, input_size, in_channels)
        layers, c_in = [], self.in_channels
        for i, c_out in enumerate(channels):
            layers.append(_conv_bn_prelu(c_in, c_out, stride=2))
            if i > 0:  # the first stage is a cheap stem
                layers.append(_conv_bn_prelu(c_out, c_out, stride=1))
            c_in = c_out
        self.features = nn.Sequential(*layers)
        h, w = self.input_size
        for _ in channels:
            h, w = (h + 1) // 2, (w + 1) // 2
        self.fc = nn.Linear(c_in * h * w, self.embedding_dim)
        self.bn_out = nn.BatchNorm1d(self.embedding_dim) if feature_bn else nn.Identity()

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(self.norm(images))
        return self.bn_out(self.fc(torch.flatten(x, 1)))
