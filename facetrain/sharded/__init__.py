"""The model-parallel classifier (Partial FC): class blocks per rank, the softmax over blocks, whole checkpoints."""
