"""Class-weight norm against the class's number of training images (Ge n.d., §3.4, figs. 7-8):
with plain softmax the norm tracks class size, a learned prior of the long tail; normalizing the weights removes it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.plotting import new_axes, save_png
from facetrain.report.analyses.analysed_run import trained_runs
from facetrain.report.analyses.correlation import pearson
from facetrain.report.figure import Plot
from facetrain.report.runs import RunRecord

__all__ = ["draw_weight_norms"]


def draw_weight_norms(runs: list[RunRecord], cfg: DictConfig, out_dir: Path) -> list[Plot]:
    """One PNG, one series per run with class weights: x = training images of class j, y = ||W_j|| as the loss
    uses it (1 for a loss that normalizes its weights; the stored parameter's norm is in the note)."""
    trained, notes = trained_runs([r for r in runs if r.status in ("completed", "unknown")])
    plot = Plot(out_dir / "weight_norm_vs_class_size.png", "class-weight norm against images per class")
    for run in trained:
        weights = run.class_weights()
        if weights is None:
            notes.append(f"{run.record.name}: its loss keeps no class weights")
            continue
        counts = np.bincount(np.asarray(run.dataset().labels), minlength=weights.shape[0])
        raw = weights.norm(dim=1).numpy()
        norms = np.ones_like(raw) if run.normalizes_weights() else raw  # the norm the logits see
        plot.series[run.label] = (counts.astype(float).tolist(), norms.tolist())
        text = (f"{run.label}: Pearson r(images per class, ||W_j||) = {pearson(counts, norms):.3f} over "
                f"{len(norms)} classes (norms {norms.min():.3g} .. {norms.max():.3g})")
        if run.normalizes_weights():  # fig. 8's flat line; the stored parameter still grows with SGD steps taken
            text += (f"; normalized in the loss, the stored parameter's norm has r = {pearson(counts, raw):.3f} "
                     f"({raw.min():.3g} .. {raw.max():.3g})")
        plot.notes.append(text)
    if not plot.series:
        return []
    plot.notes += notes
    fig, ax = new_axes()
    for i, (label, (xs, ys)) in enumerate(plot.series.items()):
        ax.scatter(xs, ys, s=10, alpha=0.7, color=f"C{i}", label=label)
    ax.set_xlabel("training images of the class")
    ax.set_ylabel("||W_j|| as the logits use it (1 when normalized)")
    ax.set_title(plot.title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    save_png(fig, plot.path)
    for note in plot.notes:
        print(f"report: {plot.path.name}: {note}")
    return [plot]
