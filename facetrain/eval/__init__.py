"""Evaluation: the embedder, the features file, and one module per protocol (LFW, BLUFR, YTF, IJB-A, IJB-B/C, .bin)."""

from facetrain.eval.features.embedder import embed_encoded, embed_images
from facetrain.eval.features.file import Features, load_features, save_features
from facetrain.eval.metrics.identification import cmc, open_set, split_probes
from facetrain.eval.metrics.pair_scoring import l2_normalize, pair_scores
from facetrain.eval.metrics.roc import eer, roc_auc, tar_at_far
from facetrain.eval.metrics.templates import pool_templates
from facetrain.eval.metrics.verification import FoldAccuracy, best_threshold, held_out_scores, kfold_accuracy
from facetrain.eval.protocols.bin import evaluate_bin
from facetrain.eval.protocols.bin_file import BinPairs, read_bin
from facetrain.eval.protocols.blufr import evaluate_blufr
from facetrain.eval.protocols.blufr_lists import BlufrLists, parse_blufr_lists
from facetrain.eval.protocols.ijb import evaluate_ijb
from facetrain.eval.protocols.ijba import evaluate_ijba
from facetrain.eval.protocols.ijba_csv import load_split, read_comparisons, read_templates
from facetrain.eval.protocols.lfw import evaluate_lfw, lfw_metrics
from facetrain.eval.protocols.lfw_pairs import LfwPairs, lfw_image_path, parse_lfw_pairs
from facetrain.eval.protocols.ytf import evaluate_ytf
from facetrain.eval.protocols.ytf_splits import YtfPairs, parse_ytf_splits

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
    "roc_auc",
    "save_features",
    "split_probes",
    "tar_at_far",
]
