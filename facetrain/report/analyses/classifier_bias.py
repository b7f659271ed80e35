"""The classifier's bias values, sorted (Ge n.d., §3.2, fig. 5: SphereFace's trained biases sit near
zero, so zeroing them costs little and leaves the logits' angular geometry clean)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.plotting import new_axes, save_png
from facetrain.report.analyses.analysed_run import trained_runs
from facetrain.report.figure import Plot
from facetrain.report.runs import RunRecord

__all__ = ["draw_classifier_bias"]


def draw_classifier_bias(runs: list[RunRecord], cfg: DictConfig, out_dir: Path) -> list[Plot]:
    """One PNG, one curve per run whose classifier has a bias: b_j sorted ascending against their rank."""
    trained, notes = trained_runs([r for r in runs if r.status in ("completed", "unknown")])
    plot = Plot(out_dir / "classifier_bias.png", "classifier bias of each class, sorted")
    for run in trained:
        bias = run.class_bias()
        weights = run.class_weights()
        if bias is None:
            continue
        values = np.sort(bias.numpy())
        plot.series[run.label] = (list(range(len(values))), values.tolist())
        # the scale the biases compete with: a typical logit W_j . f is ||W_j|| ||f||; compare with ||W_j||
        scale = float(weights.norm(dim=1).mean()) if weights is not None else float("nan")
        plot.notes.append(f"{run.label}: {len(values)} biases, mean {values.mean():.3g}, std {values.std():.3g}, "
                          f"|b| max {np.abs(values).max():.3g} (mean ||W_j|| {scale:.3g})")
    if not plot.series:
        return []
    plot.notes += notes
    fig, ax = new_axes()
    for label, (xs, ys) in plot.series.items():
        ax.bar(xs, ys, width=1.0, alpha=0.6, label=label)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("class (sorted by bias)")
    ax.set_ylabel("bias b_j")
    ax.set_title(plot.title)
    ax.legend(fontsize=7, loc="best")
    save_png(fig, plot.path)
    for note in plot.notes:
        print(f"report: {plot.path.name}: {note}")
    return [plot]
