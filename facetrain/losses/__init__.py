"""Losses: loss(features, labels) -> LossOutput, every one a FaceLoss.

A loss owns its class weights (or agents, centers, radius).
"""

from facetrain.losses.agent_distortion import AgentDistortion
from facetrain.losses.agent_loss import AgentLoss
from facetrain.losses.arcface import ArcFaceLoss
from facetrain.losses.base import FaceLoss
from facetrain.losses.c_contrastive import CContrastiveLoss
from facetrain.losses.c_triplet import CTripletLoss
from facetrain.losses.center import CenterLoss
from facetrain.losses.combined import CombinedLoss
from facetrain.losses.contrastive import ContrastiveLoss
from facetrain.losses.cosface import CosFaceLoss
from facetrain.losses.margin_softmax import MarginSoftmaxLoss
from facetrain.losses.normface import NormFaceLoss, normface_loss_bound
from facetrain.losses.output import LossOutput
from facetrain.losses.range_loss import RangeLoss
from facetrain.losses.ring import RingLoss
from facetrain.losses.softmax import SoftmaxLoss
from facetrain.losses.sphereface import SphereFaceLoss, psi, sphereface_lambda
from facetrain.losses.triplet import TripletLoss

__all__ = [
    "AgentDistortion",
    "AgentLoss",
    "ArcFaceLoss",
    "CContrastiveLoss",
    "CTripletLoss",
    "CenterLoss",
    "CombinedLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "FaceLoss",
    "LossOutput",
    "MarginSoftmaxLoss",
    "NormFaceLoss",
    "RangeLoss",
    "RingLoss",
    "SoftmaxLoss",
    "SphereFaceLoss",
    "TripletLoss",
    "normface_loss_bound",
    "psi",
    "sphereface_lambda",
]
