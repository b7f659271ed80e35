"""Face-ResNet-27 (Wen et al., ECCV 2016, center loss; the network of Ranjan et al. 2017, §5 and fig. 6)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from facetrain.backbones.base import Backbone
from facetrain.backbones.caffe_init import caffe_gaussian_, caffe_xavier_
from facetrain.backbones.sizes import conv_out, pool_out

__all__ = ["FaceResNet", "FaceResUnit"]


class FaceResUnit(nn.Module):
    """x + PReLU(conv(PReLU(conv(x)))): two 3x3 convs, identity skip, no BatchNorm.

    Caffe gives these convs a bias with `lr_mult 0` and a constant-zero filler, so the bias
    never moves; leaving it out is the same function with fewer (dead) parameters.
    """

    def __init__(self, channels: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.PReLU(channels),
            nn.Conv2d(channels, channels, 3, padding=1, bias=False), nn.PReLU(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


def _conv_prelu(c_in: int, c_out: int) -> nn.Sequential:
    """The stem and transition convs: 3x3, stride 1, no padding (each trims 2 pixels), with bias."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3), nn.PReLU(c_out))


class FaceResNet(Backbone):
    """Face-ResNet: conv1a/1b, then four stages of (conv, max-pool, residual units), then fc5.

    Layout (caffe-face `face_example/face_deploy.prototxt`): conv1a 3->32, conv1b 32->64, pool;
    1 unit at 64; conv2 64->128, pool, 2 units; conv3 128->256, pool, 5 units; conv4 256->512,
    pool, 3 units; fc5 from the flattened map (no global pooling) to the feature. 2+2+1+4+1+10+1+6
    = 27 convs. Channel-wise PReLU after every conv, none after fc5.

    The fc5 input follows the input size: each unpadded conv trims 2 pixels and each 2x2/2 pool
    halves (rounding up, as Caffe does), so 112x96 -> 110x94 -> 108x92 -> 54x46 -> 52x44 -> 26x22
    -> 24x20 -> 12x10 -> 10x8 -> 5x4, i.e. 512*5*4 = 10,240 inputs; 112x112 gives 5x5 (12,800),
    128x128 gives 6x6 (18,432).

    Learnable parameters at 112x96 with a 512-d feature (the Caffe model, minus its 6,272
    frozen-zero residual biases):

    - convs 22,286,144: with bias conv1a 896, conv1b 18,496, conv2 73,856, conv3 295,168,
      conv4 1,180,160; without bias the residual convs 2*64*64*9 = 73,728, 4*128*128*9 = 589,824,
      10*256*256*9 = 5,898,240, 6*512*512*9 = 14,155,776;
    - PReLU slopes 7,264: 32 + 64 + 2*64 + 128 + 4*128 + 256 + 10*256 + 512 + 6*512;
    - fc5 5,243,392 = 10,240*512 + 512.

    Total **27,536,800** (28,847,520 at 112x112; 31,731,104 at 128x128, where only fc5 changes).

    Args:
        embedding_dim: size of fc5 (512 in the papers).
        input_size: (height, width) of the crops: 112x96 (caffe-face) or 128x128 (L2-softmax).
        in_channels: image channels.
        units: residual units per stage (1, 2, 5, 3 in Face-ResNet-27).
        channels: conv1a's width, then the four stages' widths.
    """

    def __init__(
        self,
        embedding_dim: int = 512,
        input_size: Sequence[int] = (112, 96),
        in_channels: int = 3,
        units: Sequence[int] = (1, 2, 5, 3),
        channels: Sequence[int] = (32, 64, 128, 256, 512),
    ):
        super().__init__(embedding_dim, input_size, in_channels)
        layers: list[nn.Module] = [_conv_prelu(self.in_channels, channels[0])]
        h, w = conv_out(self.input_size, 3, 1, 0)
        c_in = channels[0]
        for c_out, n_units in zip(channels[1:], units, strict=True):
            layers += [_conv_prelu(c_in, c_out), nn.MaxPool2d(2, 2, ceil_mode=True)]
            layers += [FaceResUnit(c_out) for _ in range(n_units)]
            h, w = pool_out(conv_out((h, w), 3, 1, 0), 2, 2)
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.feature_map = (c_in, h, w)
        self.fc5 = nn.Linear(c_in * h * w, self.embedding_dim)
        self._init_caffe()

    def _init_caffe(self) -> None:
        """caffe-face's fillers: Gaussian(0.01) for residual convs, Caffe-Xavier elsewhere, zero biases."""
        for module in self.modules():
            if isinstance(module, FaceResUnit):
                for conv in module.body[0::2]:
                    caffe_gaussian_(conv.weight, 0.01)
            elif isinstance(module, nn.Sequential) and isinstance(module[0], nn.Conv2d) and module[0].bias is not None:
                caffe_xavier_(module[0].weight)
                nn.init.zeros_(module[0].bias)
        caffe_xavier_(self.fc5.weight)
        nn.init.zeros_(self.fc5.bias)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.features(self.norm(images))
        return self.fc5(torch.flatten(x, 1))
