"""Datasets, samplers, augmentation, alignment, packing and the synthetic-face generator."""

from facetrain.data.formats.folder import IMAGE_EXTENSIONS, FaceFolder, FolderIndex, scan_identity_folders
from facetrain.data.formats.idx_digits import IdxDigits
from facetrain.data.formats.mnist5k import Mnist5k
from facetrain.data.formats.packed import PackedFaces
from facetrain.data.formats.rec import RecFaces
from facetrain.data.images.augment import random_hflip
from facetrain.data.images.image_io import read_image
from facetrain.data.samplers.iteration import IterationBatchSampler
from facetrain.data.samplers.pk import PKBatchSampler
from facetrain.data.samplers.rank_share import RankShare

__all__ = [
    "IMAGE_EXTENSIONS",
    "FaceFolder",
    "FolderIndex",
    "IdxDigits",
    "IterationBatchSampler",
    "Mnist5k",
    "PKBatchSampler",
    "PackedFaces",
    "RankShare",
    "RecFaces",
    "random_hflip",
    "read_image",
    "scan_identity_folders",
]
