"""FaceModel: backbone then training head, one module with a forward (what training wraps with its loss, and eval rebuilds)."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["AfterHead", "FaceModel"]


class FaceModel(nn.Module):
    """images -> (embeddings, features): the backbone's embedding and the head's normalized feature.

    The backbone is what is deployed; the head (identity, L2 x alpha) is the papers' feature
    normalization, applied during training. The loss (class weights) stays outside: it is what a
    sharded classifier splits across ranks.

    Args:
        backbone: image -> embedding, with `input_size` and `embedding_dim` attributes.
        head: embedding -> feature.
    """

    def __init__(self, backbone: nn.Module, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head

    @property
    def input_size(self) -> tuple[int, int]:
        return self.backbone.input_size

    @property
    def embedding_dim(self) -> int:
        return self.backbone.embedding_dim

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        embeddings = self.backbone(images)
        return embeddings, self.head(embeddings)


class AfterHead(nn.Module):
    """A FaceModel seen as an embedder of its head's features (`facetrain eval ... embedding=head`)."""

    def __init__(self, model: FaceModel):
        super().__init__()
        self.model = model
        self.input_size, self.embedding_dim = model.input_size, model.embedding_dim

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.model(images)[1]
