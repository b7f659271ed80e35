"""`facetrain data audit`: duplicates, label noise, evaluation-set overlap and counts of a training set."""
