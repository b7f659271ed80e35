"""Evaluation: the embedder, the features file, and one module per protocol (LFW, BLUFR, YTF, IJB-A, IJB-B/C, .bin,
RFW)."""

from facetrain.eval.features.embedder import embed_encoded, embed_images
from facetrain.eval.features.file import Features, load_features, save_features
from facetrain.eval.metrics.identification import cmc, open_set, split_probes
from facetrain.eval.metrics.pair_scoring import l2_normalize, pair_scores
from facetrain.eval.metrics.roc import eer, roc_auc, tar_at_far
from facetrain.eval.metrics.templates import pool_templates
from facetrain.eval.metrics.verification import FoldAccuracy, best_threshold, held_out_scores, kfold_accuracy
from facetrain.eval.protocols.bin import BinPairs, evaluate_bin, read_bin
from facetrain.eval.protocols.blufr import BlufrLists, evaluate_blufr, parse_blufr_lists
from facetrain.eval.protocols.ijb import evaluate_ijb
from facetrain.eval.protocols.ijba import evaluate_ijba, load_split, read_comparisons, read_templates
from facetrain.eval.protocols.lfw import LfwPairs, evaluate_lfw, lfw_image_path, lfw_metrics, parse_lfw_pairs
from facetrain.eval.protocols.rfw import evaluate_rfw, rfw_metrics
from facetrain.eval.protocols.ytf import YtfPairs, evaluate_ytf, parse_ytf_splits

__all__ = [
    "BinPairs",
    "BlufrLists",
    "Features",
    "FoldAccuracy",
    "LfwPairs",
    "YtfPairs",
    "best_threshold",
    "cmc",
    "eer",
    "embed_encoded",
    "embed_images",
    "evaluate_bin",
    "evaluate_blufr",
    "evaluate_ijb",
    "evaluate_ijba",
    "evaluate_lfw",
    "evaluate_rfw",
    "evaluate_ytf",
    "held_out_scores",
    "kfold_accuracy",
    "l2_normalize",
    "lfw_image_path",
    "lfw_metrics",
    "load_features",
    "load_split",
    "open_set",
    "pair_scores",
    "parse_blufr_lists",
    "parse_lfw_pairs",
    "parse_ytf_splits",
    "pool_templates",
    "read_bin",
    "read_comparisons",
    "read_templates",
    "rfw_metrics",
    "roc_auc",
    "save_features",
    "split_probes",
    "tar_at_far",
]
