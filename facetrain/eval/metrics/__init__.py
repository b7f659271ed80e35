"""Scoring shared by the protocols: pair scores, k-fold accuracy, ROC read-offs, identification, templates."""
