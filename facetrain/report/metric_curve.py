"""A metric against the swept key (Ranjan et al. 2017, fig. 7: LFW accuracy against alpha, the softmax run as a
horizontal line, the eq. 9 lower bound marked).

Numeric values of the key form the curve (one per value of any other swept key). A value that is a word
(alpha=auto, alpha=trained) is drawn as its own labelled marker at the value the run logged
(`train/alpha`: the bound for auto, the learned alpha for trained); a word with no logged value is listed
in the table only, unless every value is a word, when the axis is categorical.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig

from facetrain.plotting import new_axes, save_png
from facetrain.report.bounds import alpha_bounds
from facetrain.report.compose import as_list
from facetrain.report.figure import Plot
from facetrain.report.runs import RunRecord
from facetrain.report.table import varying_keys

__all__ = ["draw_metric_curves", "pick_metrics", "pick_x"]

_PROTOCOL_METRICS = ("lfw/acc_mean", "val/lfw/acc_mean")  # metric=null: the one most runs have is plotted,
_FALLBACK_METRIC = "train/acc"                              # this when no run has either
_FRACTIONS = re.compile(r"(^|/)(acc|auc|eer|tar@|tpir@|dir@|rank)")  # fractions in [0, 1], drawn as %


def draw_metric_curves(runs: list[RunRecord], cfg: DictConfig, out_dir: Path) -> list[Plot]:
    """One PNG per metric (`metric=`, or the headline one) against `x=` (or the key the sweep varied)."""
    swept = [r for r in runs if not r.baseline]
    learned = [r for r in swept if not _is_softmax(r)] or swept
    x = pick_x(learned, cfg.get("x"))
    if x is None:
        print("report: no plot (no override varies between the runs; choose the axis with x=KEY)")
        return []
    curve = learned if x == "alpha" else swept
    baselines = [r for r in runs if r not in curve]
    plots = []
    for metric in pick_metrics(runs, cfg.get("metric")):
        plot = _draw(curve, baselines, x, metric, out_dir / f"{_slug(metric)}_vs_{_slug(x)}.png")
        plots.append(plot)
        for note in plot.notes:
            print(f"report: {plot.path.name}: {note}")
    return plots


def pick_x(runs: list[RunRecord], chosen: str | None) -> str | None:
    """`chosen`, else alpha when it varies, else the first override key that varies."""
    if chosen:
        return str(chosen)
    keys = varying_keys(runs)
    return "alpha" if "alpha" in keys else (keys[0] if keys else None)


def pick_metrics(runs: list[RunRecord], chosen) -> list[str]:
    """`chosen` (one key or a list), else whichever of lfw/acc_mean and val/lfw/acc_mean the most `runs` have
    (lfw/acc_mean on a tie), else train/acc: a sweep validated while training but not yet scored by `facetrain
    eval` is plotted by its validation rather than by the one baseline run that was scored."""
    if chosen:
        return [str(m) for m in as_list(chosen)]
    counts = [sum(r.number(m) is not None for r in runs) for m in _PROTOCOL_METRICS]
    return [_PROTOCOL_METRICS[counts.index(max(counts))] if max(counts) else _FALLBACK_METRIC]


def _is_softmax(run: RunRecord) -> bool:
    """A plain softmax run: alpha means nothing to it, so an alpha plot draws it as a line."""
    return run.choices.get("loss") == "softmax"


def _family(runs: list[RunRecord]) -> str:
    """The loss all the runs share (`l2softmax`), or empty."""
    losses = {r.choices.get("loss", "") for r in runs}
    return losses.pop() if len(losses) == 1 else ""


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def _draw(curve: list[RunRecord], baselines: list[RunRecord], x: str, metric: str, path: Path) -> Plot:
    scale = 100.0 if _FRACTIONS.search(metric) else 1.0
    plot = Plot(path, f"{metric} against {x}")
    others = [k for k in varying_keys(curve) if k != x]
    words: list[tuple[str, str, float]] = []  # (series, value, y) of runs whose x is a word with no logged number
    for run in curve:
        y = run.number(metric)
        if y is None:
            plot.notes.append(f"job {run.name} ({run.status}) has no {metric}")
            continue
        label = ", ".join(f"{k}={run.overrides.get(k, '')}" for k in others) or _family(curve) or metric
        raw = run.overrides.get(x)
        value = _number(raw) if raw is not None else run.number(f"train/{x}")  # not overridden: the value it logged
        if value is not None:
            xs, ys = plot.series.setdefault(label, ([], []))
            xs.append(value)
            ys.append(y * scale)
            plot.errors.setdefault(label, []).append((run.number(_stderr_key(metric)) or 0.0) * scale)
        elif run.number(f"train/{x}") is not None:
            plot.points[f"{x}={raw} ({label})" if others else f"{x}={raw}"] = (run.number(f"train/{x}"), y * scale)
        else:
            words.append((label, "(not set)" if raw is None else raw, y * scale))
    _sort_series(plot)
    categories = _place_words(plot, words, x)
    for run in baselines:
        where = f"job {run.name}" if run.name.isdigit() else run.name
        if run.number(metric) is not None:
            plot.hlines[f"{run.choices.get('loss', 'baseline')} ({where})"] = run.number(metric) * scale
        else:
            plot.notes.append(f"{where} has no {metric}: no line for it (score it alike, e.g. eval=lfw, or choose metric=)")
    if x == "alpha" and not categories:
        plot.vlines = {f"eq. 9 lower bound ({b:.3g})": b for b in alpha_bounds(curve + baselines)}
    _render(plot, x, metric + (" (%)" if scale != 1 else ""), categories)
    return plot


def _stderr_key(metric: str) -> str:
    """`lfw/acc_mean` -> `lfw/acc_stderr`: the standard error over folds the protocol logs next to a mean."""
    return metric[: -len("_mean")] + "_stderr" if metric.endswith("_mean") else f"{metric}_stderr"


def _sort_series(plot: Plot) -> None:
    for label, (xs, ys) in plot.series.items():
        order = sorted(range(len(xs)), key=xs.__getitem__)
        plot.series[label] = ([xs[i] for i in order], [ys[i] for i in order])
        if label in plot.errors:
            plot.errors[label] = [plot.errors[label][i] for i in order]


def _place_words(plot: Plot, words: list[tuple[str, str, float]], x: str) -> list[str]:
    """All values words: a categorical axis (returns its labels). Mixed with numbers: the table lists them."""
    if not words:
        return []
    if plot.series or plot.points:
        plot.notes += [f"{x}={value} is not a number: listed in the table only" for _, value, _ in words]
        return []
    categories = list(dict.fromkeys(value for _, value, _ in words))
    for label, value, y in words:
        xs, ys = plot.series.setdefault(label, ([], []))
        xs.append(float(categories.index(value)))
        ys.append(y)
    return categories


def _render(plot: Plot, x: str, ylabel: str, categories: list[str]) -> None:
    fig, ax = new_axes()
    for label, (xs, ys) in plot.series.items():
        ax.errorbar(xs, ys, yerr=plot.errors.get(label) if any(plot.errors.get(label, [])) else None,
                    fmt="o-" if not categories else "o", label=label, linewidth=1.5, capsize=3)
    for label, (px, py) in plot.points.items():
        ax.plot([px], [py], marker="*", markersize=11, linestyle="none", label=label)
    for i, (label, y) in enumerate(plot.hlines.items()):
        ax.axhline(y, color=f"C{2 + i}", linestyle="-", linewidth=1.2, label=label)
    for label, bound in plot.vlines.items():
        ax.axvline(bound, color="red", linestyle="--", linewidth=1.0, label=label)
    xs = [v for xs, _ in plot.series.values() for v in xs] + [p[0] for p in plot.points.values()]
    if categories:
        ax.set_xticks(range(len(categories)), categories)
    elif xs and min(xs) > 0 and max(xs) / min(xs) >= 8:  # alpha = 1 ... 64: even spacing per doubling
        ax.set_xscale("log", base=2)
        ax.xaxis.set_major_formatter("{x:g}")
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(plot.title)
    ax.grid(True, alpha=0.3)
    if plot.series or plot.points or plot.hlines:
        ax.legend(fontsize=7, loc="best")
    save_png(fig, plot.path)
