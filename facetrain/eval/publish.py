"""The end of every protocol: print the table, write metrics.json (eval run and model run), ROC PNG, TensorBoard,
and the model run's MLflow run when it has one."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.eval.calibrate import Calibrated, ScoredPairs, calibration_record, write_calibration
from facetrain.eval.features.source import ProtocolFeatures
from facetrain.eval.plots import RocCurve, log_roc_to_tensorboard, save_roc_png
from facetrain.run.metrics_file import update_metrics
from facetrain.tracking.results import log_results

__all__ = ["publish"]

_TITLES = {"lfw": "LFW", "blufr": "LFW BLUFR", "ytf": "YouTube Faces", "ijba": "IJB-A 1:1", "ijbb": "IJB-B 1:1", "ijbc": "IJB-C 1:1", "bin": "insightface .bin"}


def publish(cfg: DictConfig, name: str, metrics: dict[str, float], table: str, curves: Mapping[str, RocCurve],
            source: ProtocolFeatures,
            calibration: Mapping[str, tuple[np.ndarray, np.ndarray] | ScoredPairs | Calibrated] | None = None,
            pairs_of: str = "image") -> dict[str, float]:
    """Report a protocol's results everywhere they belong; returns `metrics`.

    Args:
        cfg: the eval config (run_dir, plots).
        name: protocol name (`lfw`, `ytf`, ...): file names and TensorBoard tag.
        metrics: flat `name/...` keys, plain floats.
        table: the printed table.
        curves: ROC curves to plot (label -> (FAR, TAR)).
        source: where the features came from (the model's run gains the metrics and the TensorBoard image).
        calibration: set name -> (labels, cosine scores) of all its pairs (or ScoredPairs, which also says how
            they were gathered, or Calibrated thresholds): calibration.json (eval run and model run) gains their
            thresholds at FAR 1e-1 ... 1e-6; None = scores that are not plain cosines.
        pairs_of: what a calibrated pair compares (image, template, video).
    """
    out_dir = abs_path(cfg.run_dir)
    update_metrics(out_dir, metrics)
    run: Path | None = source.model_run
    if run is not None:
        update_metrics(run, metrics)  # the training run's metrics.json gains the protocol's numbers
    png = None
    if cfg.plots and curves:
        title = f"{_TITLES.get(name, name)} ROC"
        png = save_roc_png(out_dir / f"roc_{name}.png", curves, title)
        if run is not None:
            log_roc_to_tensorboard(run, f"eval/{name}_roc", curves, title, source.iteration,
                                   {k: v for k, v in metrics.items() if k.endswith(("_mean", "auc", "eer"))})
    if run is not None:  # a run trained with logger=mlflow: the protocol's numbers and ROC join its MLflow run
        log_results(run, metrics, [png] if png else [], source.iteration, "eval", what=f"the {name} results")
    print(table)
    if not cfg.features:
        rows = len(source.features.paths)
        print(f"features: {rows} images, {source.embedded} embedded now, {rows - source.embedded} from the cache")
    if source.missing:
        print(f"allow_missing: {len(source.missing)} image(s) missing or unusable were dropped "
              f"(first: {source.missing[0]})")
    print(f"metrics: {out_dir / 'metrics.json'}" + (f" and {run / 'metrics.json'}" if run else "")
          + (f"; ROC: {png}" if png else ""))
    if calibration:
        _calibrate(cfg, name, calibration, source, pairs_of, [out_dir] + ([run] if run is not None else []))
    return metrics


def _calibrate(cfg: DictConfig, name: str, scored: Mapping[str, tuple[np.ndarray, np.ndarray] | ScoredPairs | Calibrated],
               source: ProtocolFeatures, pairs_of: str, out_dirs: list[Path]) -> None:
    features = str(abs_path(cfg.features)) if cfg.features else None
    data = None if cfg.features else str(cfg.data.get("root") or "")
    records = {}
    for key, given in scored.items():
        pairs = given if isinstance(given, ScoredPairs | Calibrated) else ScoredPairs(*given)
        same, scores = (pairs.same, pairs.scores) if isinstance(pairs, ScoredPairs) else (None, None)
        records[key] = calibration_record(
            name, key, same, scores, pairs_of=pairs_of, checkpoint=source.checkpoint, iteration=source.iteration,
            mirror=str(cfg.mirror), embedding=str(cfg.get("embedding", "backbone")), features_file=features,
            data=data or None, calibrated=pairs if isinstance(pairs, Calibrated) else None, extra=pairs.extra)
    files = write_calibration(out_dirs, records)
    print(f"calibration ({', '.join(records)}; thresholds at FAR 1e-1 ... 1e-6): {' and '.join(map(str, files))}")
