"""Datasets, samplers, augmentation, alignment, packing and the synthetic-face generator."""

from facetrain.data.augment import random_hflip
from facetrain.data.folder import IMAGE_EXTENSIONS, FaceFolder, FolderIndex, scan_identity_folders
from facetrain.data.idx_digits import IdxDigits
from facetrain.data.image_io import read_image
from facetrain.data.mnist5k import Mnist5k
from facetrain.data.packed import PackedFaces
from facetrain.data.pk_sampler import PKBatchSampler
from facetrain.data.rank_share import RankShare, rank_rows
from facetrain.data.rec import RecFaces
from facetrain.data.sampler import IterationBatchSampler

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
    "rank_rows",
    "read_image",
    "scan_identity_folders",
]
