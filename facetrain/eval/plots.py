"""ROC curves as a PNG (matplotlib, headless) and as an image in the evaluated run's TensorBoard."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from facetrain.plotting import close, new_axes, save_png

__all__ = ["RocCurve", "roc_from_scores", "save_roc_png", "log_roc_to_tensorboard"]

RocCurve = tuple[np.ndarray, np.ndarray]  # (FAR, TAR), FAR increasing


def roc_from_scores(labels: np.ndarray, scores: np.ndarray) -> RocCurve:
    """The full ROC (scikit-learn) of one set of pairs."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(np.asarray(labels, bool), scores)
    return fpr, tpr


def _figure(curves: Mapping[str, RocCurve], title: str):
    fig, ax = new_axes(figsize=(5, 4))
    for label, (far, tar) in curves.items():
        keep = far > 0  # a log axis cannot show FAR = 0
        ax.plot(far[keep], tar[keep], label=label, linewidth=1.2)
    ax.set_xscale("log")
    ax.set_xlabel("false accept rate")
    ax.set_ylabel("true accept rate")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.set_ylim(0, 1.01)
    if len(curves) > 1:
        ax.legend(fontsize=7, loc="lower right")
    return fig


def save_roc_png(path: Path, curves: Mapping[str, RocCurve], title: str) -> Path:
    """Write the curves (FAR on a log axis) to `path`."""
    return save_png(_figure(curves, title), path)


def log_roc_to_tensorboard(run_dir: Path, tag: str, curves: Mapping[str, RocCurve], title: str, step: int,
                           scalars: Mapping[str, float]) -> None:
    """Add the ROC figure and the headline numbers to the run's TensorBoard (its `tb/` folder)."""
    from torch.utils.tensorboard import SummaryWriter

    with SummaryWriter(log_dir=str(run_dir / "tb")) as writer:
        fig = _figure(curves, title)
        fig.tight_layout()
        writer.add_figure(tag, fig, global_step=step)
        close(fig)
        for key, value in scalars.items():
            if np.isfinite(value):
                writer.add_scalar(f"eval/{key}", value, global_step=step)
