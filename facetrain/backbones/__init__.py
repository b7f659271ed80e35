"""Backbones: image -> embedding. Each is a `Backbone` (input size, channels, embedding size), blind to classes."""

from facetrain.backbones.base import Backbone
from facetrain.backbones.face_resnet import FaceResNet, FaceResUnit
from facetrain.backbones.input_norm import InputNorm
from facetrain.backbones.iresnet import IBasicBlock, IResNet
from facetrain.backbones.lenet_pp import LeNetPP
from facetrain.backbones.mobilefacenet import MobileFaceNet
from facetrain.backbones.small_cnn import SmallFaceCNN
from facetrain.backbones.sphereface import SphereFace
from facetrain.backbones.timm_trunk import TimmTrunk
from facetrain.backbones.torchvision_trunks import TorchvisionTrunk

__all__ = [
    "Backbone",
    "FaceResNet",
    "FaceResUnit",
    "IBasicBlock",
    "IResNet",
    "InputNorm",
    "LeNetPP",
    "MobileFaceNet",
    "SmallFaceCNN",
    "SphereFace",
    "TimmTrunk",
    "TorchvisionTrunk",
]
