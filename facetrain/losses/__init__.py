"""Losses: loss(features, labels) -> LossOutput. A loss owns its class weights."""

from facetrain.losses.output import LossOutput
from facetrain.losses.softmax import SoftmaxLoss

__all__ = ["LossOutput", "SoftmaxLoss"]
