"""Procedural synthetic faces written as the real datasets' trees: CASIA-style training, LFW, BLUFR lists, YTF,
IJB-A, IJB-C, and the training tree as an insightface RecordIO pack with lfw.bin."""

from facetrain.data.synth.identity import Identity, sample_identity
from facetrain.data.synth.nuisance import Nuisance, sample_nuisance
from facetrain.data.synth.render import render_face
from facetrain.data.synth.trees import SynthSpec, lfw_pairs, write_synthetic_data

__all__ = [
    "Identity",
    "Nuisance",
    "SynthSpec",
    "lfw_pairs",
    "render_face",
    "sample_identity",
    "sample_nuisance",
    "write_synthetic_data",
]
