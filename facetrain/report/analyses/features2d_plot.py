"""2-D features of a LeNet++ run, one colour per class (Ge n.d., §3.2, fig. 6: with and without the
classifier bias; Ranjan et al. 2017, fig. 3). Any run whose backbone outputs 2 numbers is drawn."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.plotting import new_axes, save_png
from facetrain.report.analyses.analysed_run import AnalysedRun, sample_indices, trained_runs
from facetrain.report.figure import Plot
from facetrain.report.runs import RunRecord

__all__ = ["draw_features2d"]


def draw_features2d(runs: list[RunRecord], cfg: DictConfig, out_dir: Path) -> list[Plot]:
    """One PNG per 2-D run: a sample of its data (digits: the test split) embedded by its backbone."""
    trained, _ = trained_runs([r for r in runs if r.status in ("completed", "unknown")])
    plots = []
    for run in trained:
        if int(run.cfg.backbone.get("embedding_dim", 0) or 0) != 2:
            continue
        dataset = run.dataset(split="test")  # digits have a test split; face folders ignore the key
        feats, labels = run.embed(dataset, sample_indices(len(dataset), int(cfg.get("analysis_samples", 500))))
        plot = Plot(out_dir / f"features2d_{_slug(run.record.name)}.png", f"2-D features: {run.label}")
        for c in np.unique(labels):
            plot.series[str(c)] = (feats[labels == c, 0].tolist(), feats[labels == c, 1].tolist())
        plot.notes.append(_summary(run, feats, labels))
        _render(plot)
        print(f"report: {plot.path.name}: {plot.notes[0]}")
        plots.append(plot)
    return plots


def _summary(run: AnalysedRun, feats: np.ndarray, labels: np.ndarray) -> str:
    """Feature norms, and the classifier's accuracy on the sample when it is plain W f + b on these features."""
    norms = np.linalg.norm(feats, axis=1)
    text = f"{run.label}: {len(feats)} features, norm median {np.median(norms):.3g} (max {norms.max():.3g})"
    weights, bias = run.class_weights(), run.class_bias()
    if weights is not None and str(run.cfg.loss.get("_target_", "")).endswith("SoftmaxLoss") \
            and str(run.cfg.head.get("_target_", "")).endswith("IdentityHead"):
        logits = feats @ weights.numpy().T + (bias.numpy() if bias is not None else 0.0)
        text += f", classifier accuracy {100 * np.mean(logits.argmax(1) == labels):.2f}%"
    return text


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "._-" else "_" for c in name)


def _render(plot: Plot) -> None:
    fig, ax = new_axes((5, 5))
    for label, (xs, ys) in plot.series.items():
        ax.scatter(xs, ys, s=4, alpha=0.6, label=label)
    ax.axhline(0, color="grey", linewidth=0.5)
    ax.axvline(0, color="grey", linewidth=0.5)
    ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(plot.title, fontsize=9)
    if len(plot.series) <= 12:
        ax.legend(fontsize=6, markerscale=3, loc="best")
    save_png(fig, plot.path)
