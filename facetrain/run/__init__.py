"""The run directory: checkpoints, metrics.json, status.json, the device choice, how a job ended, sweep status.

Neither the trainer nor TensorBoard is imported here, so `facetrain eval` and `facetrain export` load
only what scoring a model needs.
"""
