"""Auxiliary terms added to a softmax: center loss, range loss, Ring loss."""
