"""`facetrain data audit`: duplicates, label noise, evaluation-set overlap and counts of a training set."""

import logging

# faiss's loader logs, at INFO, a ModuleNotFoundError for each SIMD build a CPU lacks before it loads the generic
# one; under Hydra's INFO logging every audit printed three of them, which read as failures
logging.getLogger("faiss.loader").setLevel(logging.WARNING)
