"""LeNet++ (Wen et al., ECCV 2016, center loss, MNIST example): a 2-D feature for feature-space plots."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facetrain.backbones.base import Backbone
from facetrain.backbones.caffe_init import caffe_xavier_
from facetrain.backbones.sizes import pool_out
from facetrain.errors import FacetrainError

__all__ = ["LeNetPP"]


def _stage(c_in: int, c_out: int, pool_kernel: int) -> nn.Sequential:
    """Two 5x5 'same' convs with PReLU, then a stride-2 max-pool (Caffe's ceil mode)."""
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 5, padding=2), nn.PReLU(c_out),
        nn.Conv2d(c_out, c_out, 5, padding=2), nn.PReLU(c_out),
        nn.MaxPool2d(pool_kernel, 2, ceil_mode=True),
    )


class LeNetPP(Backbone):
    """LeNet++ (caffe-face `mnist_example/mnist_train_test.prototxt`): three conv stages, ip1, PReLU.

    Stages of two 5x5/1/2 convs at 32, 64, 128 channels, each followed by a max-pool: 2x2/2,
    2x2/2, then 3x3/2, so 28x28 -> 14x14 -> 7x7 -> 3x3. ip1 maps the flattened 128*3*3 = 1,152
    values to the 2-D feature and a 2-slope PReLU follows it (the feature the paper plots is
    after that PReLU). Other input sizes work; ip1's input follows them.

    Parameters at 1x28x28 with a 2-D feature: convs 794,848 (832 + 25,632 + 51,264 + 102,464 +
    204,928 + 409,728), PReLU slopes 450 (2*(32+64+128) + 2), ip1 2,306; total **797,604**. The
    classifier (ip2, 2->10 without bias) belongs to the loss in facetrain.

    Args:
        embedding_dim: size of the feature (2 for the plots).
        input_size: (height, width); 28x28 is MNIST.
        in_channels: 1 for MNIST digits; 3 to train on colour face crops.
        channels: the three stages' widths (the paper's 32, 64, 128; narrower ones train faster on a CPU).
    """

    def __init__(self, embedding_dim: int = 2, input_size: Sequence[int] = (28, 28), in_channels: int = 1,
                 channels: Sequence[int] = (32, 64, 128)):
        super().__init__(embedding_dim, input_size, in_channels)
        if len(channels) != 3:
            raise FacetrainError(f"backbone.channels={list(channels)} must list 3 stage widths (the paper's [32,64,128])")
        c1, c2, c3 = (int(c) for c in channels)
        self.features = nn.Sequential(_stage(self.in_channels, c1, 2), _stage(c1, c2, 2), _stage(c2, c3, 3))
        h, w = pool_out(pool_out(pool_out(self.input_size, 2, 2), 2, 2), 3, 2)
        self.feature_map = (c3, h, w)
        self.ip1 = nn.Linear(c3 * h * w, self.embedding_dim)
        self.prelu = nn.PReLU(self.embedding_dim)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                caffe_xavier_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_tracing() and images.shape[1] != self.in_channels:  # a trace fixes C anyway
            raise FacetrainError(
                f"LeNet++ was built for {self.in_channels}-channel images but got {images.shape[1]}; "
                f"set backbone.in_channels={images.shape[1]}")
        x = self.features(self.norm(images))
        return self.prelu(self.ip1(torch.flatten(x, 1)))
