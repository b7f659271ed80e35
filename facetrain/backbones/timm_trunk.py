"""TimmTrunk: any timm model's pooled features + an embedding layer, so practitioners' CNNs and ViTs train as faces."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from torch import nn

from facetrain.backbones.base import Backbone
from facetrain.errors import FacetrainError

__all__ = ["TimmTrunk"]


def _create(name: str, input_size: tuple[int, int], in_channels: int, img_size: str | bool,
            weights_path: str | None, extra: Mapping) -> nn.Module:
    """timm.create_model without its classifier (num_classes=0 keeps the pooling); never downloads."""
    try:
        import timm
    except ImportError:
        raise FacetrainError("backbone=timm needs the timm package: pip install 'facetrain[timm]'") from None
    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:5]
        raise FacetrainError(f"backbone.name={name!r} is not a timm model; pick one of timm.list_models() "
                             f"(e.g. {', '.join(close) or 'resnet18, vit_tiny_patch16_224, mobilenetv3_small_100'})")
    kwargs = dict(extra, num_classes=0, in_chans=in_channels)
    if weights_path is not None:
        path = Path(weights_path).expanduser()
        if not path.is_file():
            raise FacetrainError(f"backbone.weights_path={weights_path} does not exist; give a local timm/ImageNet "
                                 "state dict file (facetrain never downloads weights), or null for random weights")
        # timm's own loader: drops the classifier, adapts in_chans and a ViT's position embedding to img_size
        kwargs |= {"pretrained": True, "pretrained_cfg_overlay": {"file": str(path)}}
    if img_size in (True, "true", "auto"):
        try:
            return timm.create_model(name, img_size=input_size, **kwargs)
        except TypeError as err:
            if "img_size" not in str(err) or img_size != "auto":
                raise FacetrainError(f"timm model {name} does not take img_size ({err}); "
                                     "set backbone.img_size=false") from None
    elif img_size not in (False, "false"):
        raise FacetrainError(f"backbone.img_size={img_size!r} must be auto, true or false")
    return timm.create_model(name, **kwargs)


class TimmTrunk(Backbone):
    """timm model -> its pooled features -> BN, dropout, FC, BN -> embedding (IResNet's "E" output layer on
    pooled features instead of a flattened map).

    `img_size` passes `input_size` to models built for one size (ViTs: position embeddings and patch
    grid follow it, e.g. vit_tiny_patch16_224 at 112x112 = 7x7 patches); `auto` passes it where timm's
    model takes it. CNNs pool globally, so any size works. The pixels are facetrain's (x - 127.5) / 128,
    not ImageNet's mean/std: pretrained weights see slightly shifted inputs that fine-tuning absorbs.

    Args:
        name: a timm model name (`timm.list_models()`): resnet18, vit_tiny_patch16_224, mobilenetv3_small_100, ...
        embedding_dim: size of the embedding.
        input_size: (height, width) of the crops.
        in_channels: image channels (timm's in_chans).
        dropout: dropout before the FC.
        img_size: auto, true or false: pass input_size to timm as img_size.
        weights_path: a local state dict (timm's or torchvision's names) to start from; null: random weights.
        timm_kwargs: more keyword arguments for timm.create_model (drop_path_rate, global_pool, ...).
    """

    def __init__(
        self,
        name: str = "resnet18",
        embedding_dim: int = 512,
        input_size: Sequence[int] = (112, 112),
        in_channels: int = 3,
        dropout: float = 0.0,
        img_size: str | bool = "auto",
        weights_path: str | None = None,
        timm_kwargs: Mapping | None = None,
    ):
        super().__init__(embedding_dim, input_size, in_channels)
        self.name = str(name)
        self.trunk = _create(self.name, self.input_size, self.in_channels, img_size, weights_path,
                             dict(timm_kwargs or {}))
        # what the headless model returns: its head's hidden width where it has one (mobilenetv3: 1024, not 576)
        features = int(getattr(self.trunk, "head_hidden_size", None) or self.trunk.num_features)
        self.bn_pooled = nn.BatchNorm1d(features)
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(features, self.embedding_dim)
        self.bn_feature = nn.BatchNorm1d(self.embedding_dim)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        pooled = self.trunk(self.norm(images))
        return self.bn_feature(self.fc(self.dropout(self.bn_pooled(pooled))))
