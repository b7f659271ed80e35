"""`facetrain report`: tables and plots of sweeps and runs, from the files each run wrote."""

from facetrain.report.build import Report, build_report
from facetrain.report.callback import ReportCallback
from facetrain.report.figure import Plot
from facetrain.report.metric_curve import draw_metric_curves
from facetrain.report.runs import RunRecord, load_runs

__all__ = ["Plot", "Report", "ReportCallback", "RunRecord", "build_report", "draw_metric_curves", "load_runs"]
