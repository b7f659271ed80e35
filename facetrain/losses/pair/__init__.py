"""Pair and triplet losses on the batch's own features, with their pair mining."""
