"""facetrain: train face-verification networks and score them on the published protocols."""

__version__ = "0.1.0"
