"""Build the trainable parts (backbone, head, loss) from a composed config."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

__all__ = ["build_backbone", "build_parts"]


def build_backbone(cfg: DictConfig) -> nn.Module:
    return instantiate(cfg.backbone)


def build_parts(cfg: DictConfig, num_classes: int) -> nn.ModuleDict:
    """backbone -> head -> loss, in one ModuleDict so their state dicts travel together.

    The head and loss get `num_classes` (and the loss `embedding_dim`) here, from the data,
    so no config has to repeat them.
    """
    backbone = build_backbone(cfg)
    head = instantiate(cfg.head, num_classes=num_classes)
    loss = instantiate(cfg.loss, embedding_dim=backbone.embedding_dim, num_classes=num_classes)
    return nn.ModuleDict({"backbone": backbone, "head": head, "loss": loss})
