"""Losses: loss(features, labels) -> LossOutput, every one a FaceLoss.

A loss owns its class weights (or agents, centers, radius).
"""

from facetrain.losses.agents.agent_distortion import AgentDistortion
from facetrain.losses.agents.agent_loss import AgentLoss
from facetrain.losses.agents.c_contrastive import CContrastiveLoss
from facetrain.losses.agents.c_triplet import CTripletLoss
from facetrain.losses.auxiliary.center import CenterLoss
from facetrain.losses.auxiliary.range_loss import RangeLoss
from facetrain.losses.auxiliary.ring import RingLoss
from facetrain.losses.base import FaceLoss
from facetrain.losses.classifier.adaface import AdaFaceLoss
from facetrain.losses.classifier.arcface import ArcFaceLoss
from facetrain.losses.classifier.cosface import CosFaceLoss
from facetrain.losses.classifier.curricularface import CurricularFaceLoss
from facetrain.losses.classifier.elasticface import ElasticFaceLoss
from facetrain.losses.classifier.magface import MagFaceLoss
from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss
from facetrain.losses.classifier.normface import NormFaceLoss, normface_loss_bound
from facetrain.losses.classifier.softmax import SoftmaxLoss
from facetrain.losses.classifier.sphereface import SphereFaceLoss, psi, sphereface_lambda
from facetrain.losses.classifier.subcenter_arcface import SubCenterArcFaceLoss
from facetrain.losses.combined import CombinedLoss
from facetrain.losses.output import LossOutput
from facetrain.losses.pair.contrastive import ContrastiveLoss
from facetrain.losses.pair.triplet import TripletLoss

__all__ = [
    "AdaFaceLoss",
    "AgentDistortion",
    "AgentLoss",
    "ArcFaceLoss",
    "CContrastiveLoss",
    "CTripletLoss",
    "CenterLoss",
    "CombinedLoss",
    "ContrastiveLoss",
    "CosFaceLoss",
    "CurricularFaceLoss",
    "ElasticFaceLoss",
    "FaceLoss",
    "LossOutput",
    "MagFaceLoss",
    "MarginSoftmaxLoss",
    "NormFaceLoss",
    "RangeLoss",
    "RingLoss",
    "SoftmaxLoss",
    "SphereFaceLoss",
    "SubCenterArcFaceLoss",
    "TripletLoss",
    "normface_loss_bound",
    "psi",
    "sphereface_lambda",
]
