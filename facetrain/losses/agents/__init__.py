"""NormFace's agent losses: C-contrastive and C-triplet against one learned agent vector per class."""
