"""The report's benchmark tables: the five-set row (`eval bin`, or training's `val.sets=five`) and RFW's fairness table.

Each is one row per run that has the numbers; their per-set / per-group columns leave the headline table, which
keeps the five-set mean (`bin/five_mean`) and RFW's mean over groups (`rfw`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from facetrain.eval.protocols.bin import EXTRA_SETS, FIVE_MEAN, FIVE_SETS
from facetrain.eval.tables import pct
from facetrain.report.runs import RunRecord

__all__ = ["BenchmarkTable", "benchmark_tables", "covered_by_benchmarks"]

_BIN_PREFIXES = ("bin", "val/bin")  # eval bin's numbers, else the last validation's


@dataclass(frozen=True)
class BenchmarkTable:
    title: str
    headers: list[str]
    rows: list[list[str]]


def _five_prefix(run: RunRecord) -> str | None:
    return next((p for p in _BIN_PREFIXES if run.number(f"{p}/{FIVE_MEAN}/acc_mean") is not None), None)


def _rfw_groups(runs: list[RunRecord]) -> list[str]:
    keys = {k for run in runs for k in run.metrics}
    return sorted(k.split("/")[1] for k in keys if k.startswith("rfw/") and k.count("/") == 2
                  and k.endswith("/acc_mean"))


def covered_by_benchmarks(prefix: str, present: set[str]) -> bool:
    """Whether a headline column `<prefix>/acc_mean` is a per-set or per-group number a benchmark table shows."""
    parts = prefix.split("/")
    if parts[0] == "rfw" and len(parts) == 2:
        return "rfw/acc_mean" in present
    bin_prefix = "/".join(parts[:-1])
    return (bin_prefix in _BIN_PREFIXES and parts[-1] in (*FIVE_SETS, *EXTRA_SETS)
            and f"{bin_prefix}/{FIVE_MEAN}/acc_mean" in present)


def _cell(run: RunRecord, key: str) -> str:
    value = run.number(key)
    return "" if value is None else pct(value)


def _five_table(runs: list[RunRecord]) -> BenchmarkTable | None:
    rows = [(run, p) for run in runs if (p := _five_prefix(run)) is not None]
    if not rows:
        return None
    extra = [n for n in EXTRA_SETS if any(run.number(f"{p}/{n}/acc_mean") is not None for run, p in rows)]
    names = [*FIVE_SETS, *extra]
    return BenchmarkTable(
        "Five-set benchmark (accuracy %, insightface .bin sets)", ["job", "from", *(f"{n} %" for n in names),
                                                                     "mean of 5 %"],
        [[run.name, "eval bin" if p == "bin" else "validation", *(_cell(run, f"{p}/{n}/acc_mean") for n in names),
          _cell(run, f"{p}/{FIVE_MEAN}/acc_mean")] for run, p in rows])


def _rfw_table(runs: list[RunRecord]) -> BenchmarkTable | None:
    rows = [run for run in runs if run.number("rfw/acc_mean") is not None]
    if not rows:
        return None
    groups = _rfw_groups(rows)
    fars = sorted({k.split("=", 1)[1] for run in rows for k in run.metrics if k.startswith("rfw/tar@far=")}, key=float)

    def ser(run: RunRecord) -> str:
        value = run.number("rfw/ser")
        return "n/a" if value is None or not np.isfinite(value) else f"{value:.2f}"

    return BenchmarkTable(
        "Fairness (RFW): accuracy % per group, their mean, std and skewed error ratio; TAR at a common threshold",
        ["job", *(f"{g.capitalize()} %" for g in groups), "mean %", "std %", "SER",
         *(f"TAR@FAR={f} %" for f in fars)],
        [[run.name, *(_cell(run, f"rfw/{g}/acc_mean") for g in groups), _cell(run, "rfw/acc_mean"),
          _cell(run, "rfw/acc_std"), ser(run), *(_cell(run, f"rfw/tar@far={f}") for f in fars)] for run in rows])


def benchmark_tables(runs: list[RunRecord]) -> list[BenchmarkTable]:
    """The five-set and RFW tables, each only when some run has its numbers."""
    return [t for t in (_five_table(runs), _rfw_table(runs)) if t is not None]
