"""Feature-normalization heads, applied to embeddings during training."""

from facetrain.heads.identity import IdentityHead
from facetrain.heads.l2_scale import L2ScaleHead, alpha_lower_bound

__all__ = ["IdentityHead", "L2ScaleHead", "alpha_lower_bound"]
