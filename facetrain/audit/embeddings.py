"""Embeddings of the audited images by a model (`model=`), in resumable chunks, checked on one image first."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from torchvision.transforms.v2 import functional as TF

from facetrain.audit.chunk_cache import chunked_pass
from facetrain.data.images.image_io import ImageReadError, fit_image
from facetrain.errors import FacetrainError
from facetrain.models.trained_run import TrainedModel, load_embedder
from facetrain.run.checkpoint import resolve_checkpoint

__all__ = ["AuditModel", "embed", "open_model"]


@dataclass
class AuditModel:
    path: Path
    model: TrainedModel
    device: torch.device
    mirror: str

    def prepare(self, image: torch.Tensor) -> torch.Tensor:
        """A decoded image as the model was trained on it: its size, fit and channels."""
        p = self.model.preprocessing
        image = fit_image(image, p.input_size, p.fit)
        return TF.rgb_to_grayscale(image.float()).round_().to(torch.uint8) if p.channels == 1 else image

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> np.ndarray:
        net = self.model.embedder
        images = images.to(self.device)
        feats = net(images).float()
        if self.mirror == "sum":
            feats = feats + net(images.flip(-1)).float()
        return feats.cpu().numpy()


def open_model(spec: str, runs_dir: Path, device: torch.device, mirror: str, stage: str,
               probe: torch.Tensor) -> AuditModel:
    """The model of `model=`, run once on `probe` (a decoded image of the source) so a model that cannot
    take the source's images is one line before anything is written."""
    path = resolve_checkpoint(str(spec), runs_dir)
    model = load_embedder(path, stage)
    model.embedder.eval().to(device)
    audit_model = AuditModel(path, model, device, mirror)
    shape = tuple(audit_model.prepare(probe).shape)
    try:
        out = audit_model.forward(audit_model.prepare(probe)[None])
    except Exception as err:  # any framework's error (torch, onnxruntime): the model and the input named
        reason = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
        raise FacetrainError(f"model {path} does not take the audit's input (uint8 {list((1, *shape))}, from its "
                             f"preprocessing {model.preprocessing}): {reason}; audit with the model's own run or "
                             "a face model whose input is an image batch") from None
    if out.ndim != 2 or out.shape[0] != 1 or not np.isfinite(out).all():
        raise FacetrainError(f"model {path} gives {list(out.shape)} for one image, not one finite embedding row; "
                             "pass a face-embedding model")
    return audit_model


class _Images(Dataset):
    def __init__(self, load: Callable[[int], torch.Tensor], index: Sequence[int], model: AuditModel):
        self.load, self.index, self.model = load, list(index), model

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, bool]:
        try:
            return self.model.prepare(self.load(self.index[i])), True
        except ImageReadError:  # listed by the scan as unreadable; a zero row keeps the order
            h, w = self.model.model.preprocessing.input_size
            return torch.zeros(self.model.model.preprocessing.channels, h, w, dtype=torch.uint8), False


def embed(model: AuditModel, load: Callable[[int], torch.Tensor], keys: Sequence[str], cache_dir: Path | None,
          what: str, workers: int, batch_size: int, progress: bool) -> np.ndarray:
    """float32 [N, D] L2-normalized embeddings of images 0..N-1 (`load(i)` decodes image i; `keys[i]` names it
    for the cache); an unreadable image gets a zero row."""

    def compute(index: list[int]) -> dict[str, np.ndarray]:
        loader = DataLoader(_Images(load, index, model), batch_size=batch_size, num_workers=workers)
        rows = []
        for images, ok in loader:
            feats = model.forward(images)
            feats[~ok.numpy()] = 0
            rows.append(feats)
        return {"features": np.concatenate(rows).astype(np.float32)}

    if not keys:
        return np.zeros((0, 0), np.float32)
    st = model.path.stat()
    settings = {"pass": "embed", "model": str(model.path.resolve()), "size": st.st_size, "mtime": st.st_mtime_ns,
                "mirror": model.mirror, "preprocessing": repr(model.model.preprocessing)}
    feats = chunked_pass(list(keys), compute, cache_dir, settings, chunk=2048, desc=f"audit: embed {what}",
                         progress=progress)["features"]
    norms = np.linalg.norm(feats, axis=1, keepdims=True)
    return (feats / np.maximum(norms, 1e-12)).astype(np.float32)
