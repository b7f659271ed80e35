"""Evaluation: the embedder, the features file, and one module per protocol."""

from facetrain.eval.embedder import embed_images
from facetrain.eval.features import Features, load_features, save_features
from facetrain.eval.lfw import evaluate_lfw, lfw_metrics
from facetrain.eval.lfw_pairs import LfwPairs, lfw_image_path, parse_lfw_pairs
from facetrain.eval.verification import best_threshold, cosine_scores, kfold_accuracy

__all__ = [
    "Features",
    "LfwPairs",
    "best_threshold",
    "cosine_scores",
    "embed_images",
    "evaluate_lfw",
    "kfold_accuracy",
    "lfw_image_path",
    "lfw_metrics",
    "load_features",
    "parse_lfw_pairs",
    "save_features",
]
