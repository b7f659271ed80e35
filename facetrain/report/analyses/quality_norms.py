"""Feature norm against image quality (Ranjan et al. 2017, §3, fig. 1): under plain softmax the norm of the backbone's
output drops on blurred, noisy, occluded faces; the L2 head normalizes exactly that norm away during training.

The quality of each synthetic image is read from its tree's quality file (<out>/quality/casia.tsv) (facetrain/data/synth/quality.py). When
runs were scored with `analysis.norm_sets=3` (`facetrain eval lfw analysis.norm_sets=3`, or a report's
`eval_overrides`), the LFW accuracy of each pair of norm terciles (fig. 1a) is drawn as a second PNG.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.data.synth.quality import quality_path, read_quality
from facetrain.losses import MagFaceLoss
from facetrain.plotting import new_axes, save_png
from facetrain.report.analyses.analysed_run import sample_indices, trained_runs
from facetrain.report.analyses.correlation import spearman
from facetrain.report.figure import Plot
from facetrain.report.runs import RunRecord

__all__ = ["draw_norm_sets", "draw_quality_norms"]

_FACTORS = ("quality", "blur", "pose", "occlusion")  # the factors whose rank correlation with the norm is noted
_SET_KEY = re.compile(r"^lfw/norm_sets/(\d+-\d+)/acc$")


def draw_quality_norms(runs: list[RunRecord], cfg: DictConfig, out_dir: Path) -> list[Plot]:
    """Norm of the backbone output (relative to the run's median) against quality, for a sample of training images."""
    trained, _ = trained_runs([r for r in runs if r.status in ("completed", "unknown")])
    plot = Plot(out_dir / "feature_norm_vs_quality.png", "feature norm against image quality (0 = pristine)")
    for run in trained:
        root = Path(str(run.cfg.data.get("root", "")))
        if not quality_path(root).is_file():
            continue
        quality = read_quality(root)
        dataset = run.dataset()
        names = [dataset._name(j) for j in range(len(dataset))]
        known = np.array([j for j, n in enumerate(names) if n in quality])
        chosen = known[sample_indices(len(known), int(cfg.get("analysis_samples", 500)))]
        feats, _ = run.embed(dataset, chosen)
        norms = np.linalg.norm(feats, axis=1)
        q = np.array([quality[names[j]]["quality"] for j in chosen])
        rhos = ", ".join(f"{k} {spearman([quality[names[j]][k] for j in chosen], norms):.3f}" for k in _FACTORS)
        plot.series[run.label] = (q.tolist(), (norms / np.median(norms)).tolist())
        plot.notes.append(f"{run.label}: Spearman rho(factor, norm) over {len(q)} training images: {rhos}; "
                          f"median norm {np.median(norms):.3g}, worst-quality tenth {_tail_ratio(q, norms):.3f} "
                          "of the best tenth's")
        if run.trained_with(MagFaceLoss):  # the norm is what MagFace trains to be a quality score
            plot.notes.append(f"{run.label}: MagFace (Meng et al. 2021): this norm is the run's quality score "
                              f"(larger = more recognizable); Spearman rho(quality level, norm) "
                              f"{spearman(q, norms):.3f} (negative: it ranks the images' quality)")
    if not plot.series:
        return []
    _scatter(plot, "quality level (0 pristine .. 1 worst)", "feature norm / the run's median")
    return [plot, *draw_norm_sets(runs, cfg, out_dir)]


def draw_norm_sets(runs: list[RunRecord], cfg: DictConfig, out_dir: Path) -> list[Plot]:
    """LFW accuracy per pair of norm sets (`1-1` both lowest-norm .. `3-3` both highest), one bar group per run."""
    plot = Plot(out_dir / "lfw_acc_by_norm_set.png", "LFW accuracy by feature-norm sets (fig. 1a)")
    for run in runs:
        sets = sorted(m.group(1) for k in run.metrics if (m := _SET_KEY.match(k)) and run.number(k) is not None)
        if sets:
            label = f"{run.choices.get('loss', '')} ({run.name})"
            plot.series[label] = ([float(i) for i in range(len(sets))], [100 * run.number(f"lfw/norm_sets/{s}/acc")
                                                                        for s in sets])
            plot.notes.append(f"{label}: " + ", ".join(
                f"{s} {100 * run.number(f'lfw/norm_sets/{s}/acc'):.2f}% "
                f"({int(run.number(f'lfw/norm_sets/{s}/pairs') or 0)} pairs)" for s in sets))
            plot.vlines = {s: float(i) for i, s in enumerate(sets)}  # the x tick labels
    if not plot.series:
        return []
    fig, ax = new_axes()
    width = 0.8 / len(plot.series)
    for i, (label, (xs, ys)) in enumerate(plot.series.items()):
        ax.bar([x + i * width for x in xs], ys, width=width, label=label)
    low = min(y for _, ys in plot.series.values() for y in ys)
    ax.set_ylim(max(0.0, low - 5), 100)  # the differences between sets are a few points
    ax.set_xticks([x + 0.4 - width / 2 for x in plot.vlines.values()], list(plot.vlines))
    ax.set_xlabel("norm sets of the pair's two images (1 = lowest-norm tercile)")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(plot.title)
    ax.legend(fontsize=7, loc="best")
    save_png(fig, plot.path)
    _print(plot)
    return [plot]


def _tail_ratio(q: np.ndarray, norms: np.ndarray) -> float:
    """Mean norm of the worst-quality tenth over that of the best-quality tenth."""
    order = np.argsort(q)
    k = max(1, len(q) // 10)
    return float(norms[order[-k:]].mean() / norms[order[:k]].mean())


def _scatter(plot: Plot, xlabel: str, ylabel: str) -> None:
    fig, ax = new_axes()
    for label, (xs, ys) in plot.series.items():
        ax.scatter(xs, ys, s=8, alpha=0.6, label=label)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(plot.title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, loc="best")
    save_png(fig, plot.path)
    _print(plot)


def _print(plot: Plot) -> None:
    for note in plot.notes:
        print(f"report: {plot.path.name}: {note}")
