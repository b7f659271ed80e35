"""The report's table of runs: headline columns for the terminal and Markdown, every number for the CSV."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable

from facetrain.eval.tables import pct
from facetrain.report.benchmarks import covered_by_benchmarks
from facetrain.report.runs import RunRecord

__all__ = ["common_overrides", "csv_text", "headline_table", "varying_keys"]

_NOT_METRICS = ("status", "status_reason")  # status.json's copy in metrics.json: the table has its own columns


def varying_keys(runs: list[RunRecord]) -> list[str]:
    """Override keys whose value differs between the runs (absent counts as a value), in first-seen order."""
    keys = list(dict.fromkeys(k for run in runs for k in run.overrides))
    return [k for k in keys if len({run.overrides.get(k) for run in runs}) > 1]


def common_overrides(runs: list[RunRecord]) -> list[str]:
    """`key=value` for the overrides every run shares (the sweep's fixed settings)."""
    varying = set(varying_keys(runs))
    return [f"{k}={v}" for k, v in runs[0].overrides.items() if k not in varying] if runs else []


def _cell(run: RunRecord, key: str, fmt: Callable[[float], str]) -> str:
    value = run.number(key)
    return "" if value is None else fmt(value)


def _headline_metrics(runs: list[RunRecord]) -> list[tuple[str, Callable[[RunRecord], str]]]:
    """(header, cell) for the numbers worth a column: train loss/acc, the alpha used, each protocol's (and the
    last validation's) accuracy and AUC."""
    present = {k for run in runs for k, v in run.metrics.items() if v is not None}
    columns: list[tuple[str, Callable[[RunRecord], str]]] = []
    simple = [("train/loss", "train loss", lambda v: f"{v:.4f}"), ("train/acc", "train acc %", pct),
              ("train/alpha", "alpha used", lambda v: f"{v:.3g}")]
    columns += [(header, lambda r, k=key, f=fmt: _cell(r, k, f)) for key, header, fmt in simple if key in present]
    for prefix in sorted(k[:-len("/acc_mean")] for k in present if k.endswith("/acc_mean") and "best/" not in k):
        if covered_by_benchmarks(prefix, present):  # a per-set / per-group number: in its benchmark table
            continue
        columns.append((f"{prefix} acc % (mean ± std)",
                        lambda r, p=prefix: "" if r.number(f"{p}/acc_mean") is None
                        else pct(r.number(f"{p}/acc_mean"), r.number(f"{p}/acc_std"))))
        if f"{prefix}/auc" in present:
            columns.append((f"{prefix} AUC %", lambda r, k=f"{prefix}/auc": _cell(r, k, pct)))
    return columns


def headline_table(runs: list[RunRecord]) -> tuple[list[str], list[list[str]]]:
    """(headers, rows): job, the varying overrides, status, headline numbers, wall time, and the reason of any
    job that did not complete (no reason column when every job completed)."""
    keys = varying_keys(runs)
    numbers = _headline_metrics(runs)
    reasons = any(run.reason for run in runs)
    headers = ["job", *keys, "status", *(h for h, _ in numbers), "wall s"] + (["reason"] if reasons else [])
    rows = [[run.name, *(run.overrides.get(k, "") for k in keys), run.status, *(cell(run) for _, cell in numbers),
             "" if run.wall_s is None else f"{run.wall_s:.0f}"] + ([run.reason] if reasons else []) for run in runs]
    return headers, rows


def csv_text(runs: list[RunRecord]) -> str:
    """One row per run: job, directory, status, reason, wall seconds, overrides, then every metric (full precision)."""
    keys = list(dict.fromkeys(k for run in runs for k in run.overrides))
    metrics = sorted({k for run in runs for k in run.metrics if k not in _NOT_METRICS})
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["job", "dir", "status", "reason", "wall_s", "overrides", *keys, *metrics])
    for run in runs:
        overrides = " ".join(f"{k}={v}" for k, v in run.overrides.items())
        writer.writerow([run.name, str(run.dir), run.status, run.reason, "" if run.wall_s is None else run.wall_s,
                         overrides, *(run.overrides.get(k, "") for k in keys),
                         *("" if run.metrics.get(k) is None else run.metrics[k] for k in metrics)])
    return out.getvalue()
