"""`facetrain eval features2d`: a trained model's features of a labelled test split, classified and drawn.

Ranjan et al. 2017, §4.1: LeNet++ with a 2-D feature on MNIST, softmax vs L2-softmax; table 1 is the test
accuracy of the trained classifier, fig. 3 the test features (taken before the L2-normalize layer)
scattered by class. The test split is the training data's own (`data.dataset.split=test`).
"""

from __future__ import annotations

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from facetrain.config import abs_path
from facetrain.errors import FacetrainError
from facetrain.models.trained_run import TrainedRun
from facetrain.plotting import new_axes, save_png
from facetrain.run.checkpoint import resolve_checkpoint, run_of_checkpoint
from facetrain.run.device import pick_device
from facetrain.run.metrics_file import update_metrics

__all__ = ["class_means", "embed_split", "evaluate_features2d", "load_trained", "save_scatter_png"]


def _test_split(train_cfg: DictConfig, split: str):
    """The training data config's dataset, on another split (MNIST-style sets have `split`)."""
    if "split" not in train_cfg.data.dataset:
        raise FacetrainError(f"the model was trained on data without a test split ({train_cfg.data.dataset._target_}); "
                             "features2d needs data=mnist, fashion_mnist or mnist5k")
    return instantiate(train_cfg.data.dataset, split=split)


def load_trained(checkpoint, device: torch.device):
    """(backbone + head, loss, training config) of a checkpoint, in eval mode on `device`."""
    run = TrainedRun.open(checkpoint)
    model = run.face_model()
    return model.to(device), run.loss(model).to(device), run.cfg


@torch.no_grad()
def embed_split(model, loss, dataset, device: torch.device, batch_size: int = 500):
    """(features [N, D] float32 — the backbone's output —, labels [N], right top-1 predictions of the trained
    classifier, or None when the loss has none)."""
    features, labels, correct = [], [], 0
    for images, batch_labels in DataLoader(dataset, batch_size=batch_size):
        images, batch_labels = images.to(device), batch_labels.to(device)
        embeddings, head_features = model(images)
        out = loss(head_features, batch_labels)
        correct = None if out.correct is None or correct is None else correct + int(out.correct)
        features.append(embeddings.float().cpu())
        labels.append(batch_labels.cpu())
    return torch.cat(features).numpy(), torch.cat(labels).numpy(), correct


def class_means(features: np.ndarray, labels: np.ndarray, num_classes: int) -> np.ndarray:
    """Each class's mean direction [C, D]: the unit vector along the sum of its unit features (zeros for a
    class with none), so `features @ means.T` ranks classes by cosine."""
    means = np.zeros((num_classes, features.shape[1]), dtype=np.float64)
    np.add.at(means, labels, features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12))
    return means / np.maximum(np.linalg.norm(means, axis=1, keepdims=True), 1e-12)


def save_scatter_png(path, features: np.ndarray, labels: np.ndarray, title: str):
    """Fig. 3's picture: the 2-D features, one colour per class."""
    fig, ax = new_axes(figsize=(5, 5))
    for c in np.unique(labels):
        keep = labels == c
        ax.scatter(features[keep, 0], features[keep, 1], s=3, label=str(c), alpha=0.7)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(title)
    ax.legend(markerscale=4, fontsize=7, loc="best")
    return save_png(fig, path)


def _title(train_cfg: DictConfig) -> str:
    """`SoftmaxLoss, L2ScaleHead alpha=16`: what the picture shows."""
    loss, head = train_cfg.loss._target_.rsplit(".", 1)[-1], train_cfg.head._target_.rsplit(".", 1)[-1]
    alpha = f" alpha={train_cfg.head.alpha}" if "alpha" in train_cfg.head else ""
    return f"{loss}, {head}{alpha}: test features"


def evaluate_features2d(cfg: DictConfig) -> dict[str, float]:
    """Embed the test split, score the trained classifier, write features2d.npz, the scatter PNG and metrics."""
    checkpoint = resolve_checkpoint(str(cfg.model), abs_path(cfg.paths.runs))
    device = pick_device(cfg.device)
    model, loss, train_cfg = load_trained(checkpoint, device)
    test_set = _test_split(train_cfg, str(cfg.protocol.split))
    features, labels, correct = embed_split(model, loss, test_set, device, int(cfg.batch_size))
    train_features, train_labels, _ = embed_split(model, loss, _test_split(train_cfg, "train"), device,
                                                  int(cfg.batch_size))
    means = class_means(train_features, train_labels, test_set.num_classes)
    norms = np.linalg.norm(features, axis=1)
    metrics = {"features2d/acc_ncm": float(np.mean((features @ means.T).argmax(1) == labels)),
               "features2d/norm_mean": float(norms.mean()), "features2d/norm_max": float(norms.max())}
    if correct is not None:
        metrics["features2d/acc"] = correct / len(labels)
    out_dir = abs_path(cfg.run_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    np.savez(out_dir / "features2d.npz", features=features, labels=labels, class_means=means)
    lines = [f"{len(labels)} test images, {features.shape[1]}-D features, norm mean {norms.mean():.2f} (max {norms.max():.2f})"]
    if correct is not None:
        lines.append(f"test accuracy (trained classifier): {100 * metrics['features2d/acc']:.2f}%")
    lines.append(f"test accuracy (nearest training-class mean, cosine): {100 * metrics['features2d/acc_ncm']:.2f}%")
    if features.shape[1] == 2 and cfg.plots:
        png = save_scatter_png(out_dir / "features2d.png", features, labels, _title(train_cfg))
        lines.append(f"scatter: {png}")
    elif features.shape[1] != 2:
        lines.append("no scatter: the features are not 2-D (train with embedding_dim=2)")
    update_metrics(out_dir, metrics)
    run = run_of_checkpoint(checkpoint)
    if run is not None:
        update_metrics(run, metrics)
    print("\n".join(lines + [f"metrics: {out_dir / 'metrics.json'}"]))
    return metrics
