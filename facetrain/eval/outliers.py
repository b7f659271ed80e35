"""`facetrain data outliers model=RUN`: the training images far from their class's dominant sub-centre, as an
exclusion list the next run reads with `data.exclude=` (Deng et al. 2020, Sub-center ArcFace: the cleaning step,
insightface's `recognition/subcenter_arcface/drop.py`).

The run's own training data (its config's data selection) is embedded as the loss saw it (after the head, no
mirroring); each class's dominant sub-centre is the one most of its images are closest to; an image whose
angle to it is `outliers.threshold` degrees or more (the paper's 75) is listed. A run of any margin-family
loss works (its K is 1: the class weight is the only centre).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, open_dict
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from facetrain.atomic import atomic_write
from facetrain.config import abs_path
from facetrain.data.images.image_io import ImageReadError
from facetrain.errors import FacetrainError
from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss
from facetrain.losses.classifier.subcenter_arcface import dominant_subcenters
from facetrain.models.face_model import AfterHead
from facetrain.models.trained_run import TrainedRun
from facetrain.run.checkpoint import resolve_checkpoint, run_of_checkpoint
from facetrain.run.device import pick_device

__all__ = ["OUTLIERS_NAME", "find_outliers", "outliers", "read_outliers"]

log = logging.getLogger(__name__)

OUTLIERS_NAME = "outliers.tsv"
COLUMNS = ("path", "label", "cosine", "angle")


class _Samples(Dataset):
    """(image, position, readable) of each training sample, the sample itself (no replacement of a broken
    file by the next one, as training does: a broken file is skipped here, and listed in bad_files.tsv)."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, j: int):
        try:
            return self.dataset._load(j), j, True
        except ImageReadError:
            h, w = self.dataset.input_size
            return torch.zeros((3, h, w), dtype=torch.uint8), j, False


def _training_data(run: TrainedRun):
    """The run's training dataset as its config selected it."""
    data = run.cfg.data.dataset.copy()
    with open_dict(data):
        if str(data.get("_target_", "")).endswith("FaceFolder"):
            data["progress"] = False
    dataset = instantiate(data)
    if run.num_classes is not None and dataset.num_classes != run.num_classes:
        raise FacetrainError(f"the run's training data ({data.get('root')}) now has {dataset.num_classes} identities, "
                             f"its checkpoint {run.num_classes}; point outliers at the run whose data is unchanged")
    return dataset


def _class_weight(run: TrainedRun) -> torch.Tensor:
    """The run's sub-centres [C, K, D] (or class weights [C, D]); one line when its loss has none."""
    target = str(run.cfg.loss.get("_target_", ""))
    try:
        cls = get_class(target)
    except Exception:  # hydra raises ImportError or ValueError
        cls = None
    weight = run.state["model"].get("loss", {}).get("weight")
    if cls is None or not issubclass(cls, MarginSoftmaxLoss) or weight is None:
        raise FacetrainError(f"{run.path} was trained with {target or 'no loss'}; `data outliers` needs a run of "
                             "loss=subcenter_arcface (or another margin loss: arcface, cosface, normface)")
    return weight.float()


@torch.no_grad()
def _embed(run: TrainedRun, dataset, device: torch.device, batch_size: int, workers: int,
           progress: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(features [N, D] after the training head, readable [N])."""
    net = AfterHead(run.face_model(head=True)).eval().to(device)
    loader = DataLoader(_Samples(dataset), batch_size=batch_size, num_workers=workers)
    feats, readable = [], []
    for images, _, ok in tqdm(loader, desc="embed training images", disable=not progress, dynamic_ncols=True):
        feats.append(net(images.to(device)).float().cpu())
        readable.append(ok)
    if not feats:
        raise FacetrainError("the run's training data has no images")
    return torch.cat(feats), torch.cat(readable)


def find_outliers(features: torch.Tensor, labels: torch.Tensor, weight: torch.Tensor,
                  threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """(cosine [N] to the own class's dominant sub-centre, listed [N]: angle >= `threshold` degrees, i.e. cosine
    <= cos(threshold), as `drop.py` keeps only cosines above it)."""
    _, cosine = dominant_subcenters(features, labels, weight)
    cosine = cosine.double().numpy()
    return cosine, cosine <= math.cos(math.radians(threshold))


def outliers(cfg: DictConfig) -> Path:
    """The `data outliers` action: embed, find, write `outliers.tsv` (into the model's run by default)."""
    o = cfg.outliers
    if cfg.get("model") in (None, ""):
        raise FacetrainError("data outliers needs model=RUN (a run directory or checkpoint trained with "
                             "loss=subcenter_arcface)")
    threshold = float(o.threshold)
    if not 0 < threshold < 180:
        raise FacetrainError(f"outliers.threshold={o.threshold} must be an angle in degrees in (0, 180) (the paper's 75)")
    path = resolve_checkpoint(str(cfg.model), abs_path(cfg.paths.runs))
    run = TrainedRun.open(path)
    weight = _class_weight(run)
    out = abs_path(o.out) if o.get("out") else (run_of_checkpoint(path) or path.parent) / OUTLIERS_NAME
    dataset = _training_data(run)
    features, readable = _embed(run, dataset, pick_device(str(o.device)), int(o.batch_size), int(o.workers),
                                bool(o.progress))
    labels = torch.as_tensor(np.asarray(dataset.labels), dtype=torch.long)
    cosine, listed = find_outliers(features, labels, weight, threshold)
    listed &= readable.numpy()
    rows = sorted(np.flatnonzero(listed), key=lambda j: cosine[j])  # the farthest first
    header = (f"# facetrain data outliers: images {threshold:g} degrees or more from their class's dominant "
              f"sub-centre (model {path}, K = {weight.shape[1] if weight.dim() == 3 else 1}); "
              f"train without them: data.exclude={out}\n# " + "\t".join(COLUMNS) + "\n")
    text = header + "".join(f"{dataset._name(j)}\t{dataset.classes[int(labels[j])]}\t{cosine[j]:.6f}\t"
                            f"{math.degrees(math.acos(max(-1.0, min(1.0, cosine[j])))):.3f}\n" for j in rows)
    atomic_write(out, lambda tmp: Path(tmp).write_text(text))
    print(f"outliers: {len(rows)} of {int(readable.sum())} training images ({100 * len(rows) / max(1, len(labels)):.1f}%) "
          f"are {threshold:g} degrees or more from their class's dominant sub-centre; list: {out}\n"
          f"  train without them: facetrain train ... data.exclude={out}")
    return out


def read_outliers(path: str | Path) -> list[tuple[str, str, float, float]]:
    """(path, label, cosine, angle) rows of an outliers.tsv."""
    rows = []
    for line in Path(path).read_text().splitlines():
        if line and not line.startswith("#"):
            name, label, cosine, angle = line.split("\t")
            rows.append((name, label, float(cosine), float(angle)))
    return rows
