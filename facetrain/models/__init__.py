"""The trained network as one module, rebuilt from a checkpoint, and foreign models (arcface_torch, ONNX) as embedders."""
