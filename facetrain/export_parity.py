"""Export parity: the exported file against the PyTorch backbone on real face crops, cosine per image.

Random noise exercises the network far from where it is used; face crops do not. The crops come from
`parity_images` (a folder), else the run's own validation tree or training folder, else faces drawn by the
synthetic generator (never noise).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.transforms.v2 import functional as TF

from facetrain.config import abs_path
from facetrain.data.formats.file_index import IMAGE_EXTENSIONS
from facetrain.data.images.image_io import read_image
from facetrain.errors import FacetrainError
from facetrain.models.trained_run import Preprocessing

__all__ = ["Parity", "crop_files", "measure_parity", "parity_crops"]


@dataclass(frozen=True)
class Parity:
    images: int
    source: str
    min_cosine: float
    max_abs_difference: float
    max_relative_difference: float  # max |a - b| over max |a|

    def as_dict(self) -> dict:
        return {"images": self.images, "source": self.source, "min_cosine": self.min_cosine,
                "max_abs_difference": self.max_abs_difference, "max_relative_difference": self.max_relative_difference}


def crop_files(folder: Path, count: int) -> list[Path]:
    """`count` image files spread evenly over the sorted files of `folder` (so several identities, not one)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if len(files) <= count:
        return files
    return [files[i] for i in np.linspace(0, len(files) - 1, count).round().astype(int)]


def _run_folders(train_cfg: DictConfig | None) -> list[tuple[str, str]]:
    if train_cfg is None:
        return []
    found = []
    for key in ("val.root", "data.root"):
        try:
            value = OmegaConf.select(train_cfg, key)
        except Exception:  # an interpolation the saved config cannot resolve here: that folder is not used
            value = None
        if isinstance(value, str) and value:
            found.append((key, value))
    return found


def _synthetic(count: int, size: Sequence[int], seed: int) -> list[torch.Tensor]:
    from facetrain.data.synth import render_face, sample_identity, sample_nuisance

    rng = np.random.default_rng(seed)
    faces = []
    for _ in range(count):
        image = render_face(sample_identity(rng), sample_nuisance(rng), rng, (int(size[1]), int(size[0])))
        faces.append(torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1))
    return faces


def parity_crops(cfg: DictConfig, train_cfg: DictConfig | None, pre: Preprocessing) -> tuple[torch.Tensor, str]:
    """uint8 [N, C, H, W] face crops at the model's input, and where they came from."""
    count = int(cfg.parity_batch)
    folders = [("parity_images", str(cfg.parity_images))] if cfg.parity_images else _run_folders(train_cfg)
    crops, source = [], ""
    for key, folder in folders:
        path = abs_path(folder)
        if not path.is_dir():
            if key == "parity_images":
                raise FacetrainError(f"parity_images={folder} is not a folder; give a folder of face crops")
            continue
        files = crop_files(path, count)
        if files:
            crops = [read_image(f, pre.input_size, pre.fit) for f in files]
            source = f"{len(files)} crops of {path} ({key})"
            break
        if key == "parity_images":
            raise FacetrainError(f"parity_images={folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
    if not crops:
        crops = _synthetic(count, pre.input_size, int(cfg.get("seed", 0)))
        source = f"{count} synthetic faces (the run's data was not found; parity_images=DIR uses yours)"
    if pre.channels == 1:
        crops = [TF.rgb_to_grayscale(c.float()).round_().to(torch.uint8) for c in crops]
    return torch.stack(crops), source


@torch.no_grad()
def measure_parity(reference: Callable, exported: Callable, crops: torch.Tensor, source: str) -> Parity:
    """Cosine of each crop's two embeddings (the lowest reported) and the largest absolute difference."""
    a, b = reference(crops).float(), exported(crops).float()
    if a.shape != b.shape:
        raise FacetrainError(f"the exported model gives embeddings of shape {tuple(b.shape)}, PyTorch "
                             f"{tuple(a.shape)}; the export is broken")
    cosine = torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=1)
    diff = (a - b).abs().max()
    return Parity(len(crops), source, float(cosine.min()), float(diff),
                  float(diff / a.abs().max().clamp_min(1e-12)))
