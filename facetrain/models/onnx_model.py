"""Any ONNX face model as an embedder: run through onnxruntime, its input size, layout and type read from the file.

facetrain's own exports take uint8 pixels and normalize inside; other face models (insightface's
`w600k_r50.onnx`, arcface_torch's `torch2onnx.py` output) take float32 (x - 127.5) / 127.5 RGB, NCHW or
NHWC. A file with a fixed batch size is run in chunks of that size.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from facetrain.errors import FacetrainError

__all__ = ["ONNX_FLOAT_MEAN", "ONNX_FLOAT_STD", "OnnxEmbedder"]

ONNX_FLOAT_MEAN, ONNX_FLOAT_STD = 127.5, 127.5  # float inputs: (x / 255 - 0.5) / 0.5, insightface's convention
_TYPES = {"tensor(uint8)": np.uint8, "tensor(float)": np.float32, "tensor(float16)": np.float16}


def _session(path: Path):
    try:
        import onnxruntime
    except ImportError:
        raise FacetrainError(f"model={path} is an ONNX file; scoring it needs onnxruntime: "
                             "pip install 'facetrain[export]'") from None
    try:
        return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as err:
        raise FacetrainError(f"cannot load the ONNX model {path}: {str(err).splitlines()[0]}") from None


def _layout(shape: list, path: Path) -> tuple[str, int, tuple[int, int]]:
    """("NCHW" or "NHWC", channels, (height, width)) from the input's shape."""
    if len(shape) == 4 and shape[1] in (1, 3):
        layout, channels, size = "NCHW", shape[1], (shape[2], shape[3])
    elif len(shape) == 4 and shape[3] in (1, 3):
        layout, channels, size = "NHWC", shape[3], (shape[1], shape[2])
    else:
        raise FacetrainError(f"the ONNX model {path} takes input of shape {shape}; a face model takes images "
                             "[N, 3, H, W] or [N, H, W, 3] (1 channel for grey)")
    if not all(isinstance(s, int) and s > 0 for s in size):
        raise FacetrainError(f"the ONNX model {path} has no fixed input size (input shape {shape}); export it with "
                             "a fixed height and width")
    return layout, int(channels), (int(size[0]), int(size[1]))


class OnnxEmbedder(nn.Module):
    """uint8 images [N, C, H, W] -> float32 embeddings [N, D], computed by onnxruntime on the CPU.

    Args:
        path: the `.onnx` file (one image input, the embedding as first output).
    """

    def __init__(self, path: Path):
        super().__init__()
        self.path, self.session = Path(path), _session(Path(path))
        spec = self.session.get_inputs()[0]
        self.input_name = spec.name
        self.layout, self.in_channels, self.input_size = _layout(list(spec.shape), self.path)
        if spec.type not in _TYPES:
            raise FacetrainError(f"the ONNX model {path} takes {spec.type} input; supported: "
                                 f"{', '.join(_TYPES)}")
        self.dtype = _TYPES[spec.type]
        self.batch = spec.shape[0] if isinstance(spec.shape[0], int) and spec.shape[0] > 0 else None
        out = self.session.get_outputs()[0].shape
        self.embedding_dim = out[-1] if out and isinstance(out[-1], int) else None

    def _prepare(self, images: torch.Tensor) -> np.ndarray:
        x = images.detach().cpu()
        if self.dtype != np.uint8:
            x = (x.float() - ONNX_FLOAT_MEAN) / ONNX_FLOAT_STD
        if self.layout == "NHWC":
            x = x.permute(0, 2, 3, 1)
        return np.ascontiguousarray(x.numpy().astype(self.dtype, copy=False))

    def _run(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.session.run(None, {self.input_name: x})[0], dtype=np.float32).reshape(len(x), -1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self._prepare(images)
        if self.batch is None:
            out = self._run(x)
        else:  # a fixed batch size: run in chunks, the last one padded with zeros and cut back
            chunks = []
            for start in range(0, len(x), self.batch):
                part = x[start:start + self.batch]
                padded = np.concatenate([part, np.zeros((self.batch - len(part), *part.shape[1:]), part.dtype)])
                chunks.append(self._run(padded)[: len(part)])
            out = np.concatenate(chunks)
        return torch.from_numpy(out).to(images.device)
