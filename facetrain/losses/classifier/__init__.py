"""Classifier losses: softmax over class weights, with feature/weight normalization and margins (the margin family)."""
