"""`facetrain verify`: from photos to a decision — align, embed with the model's own preprocessing, score, and
decide at a threshold calibrated to a false accept rate."""

from facetrain.verify.command import PhotoEmbedder, top_identities, verify_from_config
from facetrain.verify.photos import default_detector, list_photos, open_photo, photo_crops

__all__ = ["PhotoEmbedder", "default_detector", "list_photos", "open_photo", "photo_crops", "top_identities",
           "verify_from_config"]
