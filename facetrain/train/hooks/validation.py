"""ValidationHook: score the LFW protocol and/or `.bin` sets with the current backbone every `every` iterations; keep best.pt.

Embeds the validation tree exactly as `facetrain eval lfw` would, and each `.bin` set of `val.sets` as
`facetrain eval bin` would (mirror-sum features, the training fit and channels, the same metric keys:
`lfw/acc_mean`, `bin/<file name>/acc_mean`), without the embedding cache (the weights move), logs them as
`val/...` to TensorBoard and metrics.json, and saves `checkpoints/best.pt` whenever the chosen metric improves.
Each validation also rewrites the run's calibration.json (thresholds at FAR 1e-1 ... 1e-6 of each set, at this
iteration), so a finished run carries the thresholds of its final weights for `facetrain verify`.
best.pt records the score it was saved for (`val_best`), so a resumed run replaces it only with a better one.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.distributed.process_group import main_outcome
from facetrain.distributed.rank import is_main_process
from facetrain.errors import FacetrainError
from facetrain.eval.calibrate import calibration_record, write_calibration
from facetrain.eval.features.embedder import embed_encoded, embed_images
from facetrain.eval.features.file import Features
from facetrain.eval.protocols.bin import THRESHOLD_SEARCHES, bin_paths, read_sets, sets_metrics
from facetrain.eval.protocols.lfw import LfwPairs, lfw_metrics, parse_lfw_pairs
from facetrain.run.checkpoint import checkpoint_path, load_checkpoint
from facetrain.run.metrics_file import read_metrics, update_metrics
from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["ValidationHook", "first_pairs_per_fold", "saved_best"]

log = logging.getLogger(__name__)


def first_pairs_per_fold(pairs: LfwPairs, n: int) -> LfwPairs:
    """The first n matched and n mismatched pairs of every fold: a cheaper protocol of the same shape."""
    if n >= pairs.per_fold:
        return pairs
    position = np.arange(len(pairs)) % pairs.per_fold  # within its fold's matched or mismatched block
    keep = np.flatnonzero(position < n)
    return LfwPairs([pairs.left[i] for i in keep], [pairs.right[i] for i in keep], pairs.same[keep],
                    pairs.fold[keep], pairs.folds, n)


@dataclass
class _Best:
    value: float = -math.inf
    iteration: int = 0


def _record_of(saved: dict, run_dir: Path, metric: str) -> dict | None:
    """best.pt's `val_best`; for a best.pt written before it had one, metrics.json's val/best/<metric> when
    that names best.pt's iteration."""
    if "val_best" in saved:
        return saved["val_best"]
    metrics = read_metrics(run_dir)
    if metrics.get("val/best_iteration") == saved["iteration"] and metrics.get(f"val/best/{metric}") is not None:
        return {"metric": metric, "value": metrics[f"val/best/{metric}"]}
    return None


def saved_best(run_dir: Path, metric: str) -> _Best:
    """The score and iteration of the run's best.pt when `metric` chose it; -inf (nothing to beat) otherwise.

    best.pt is mapped, not read: only its small entries are looked at.
    """
    path = checkpoint_path(run_dir, "best")
    if not path.is_file():
        return _Best()
    saved = load_checkpoint(path, mmap=True, fix="it is the run's best.pt so far: move it away and the next "
                            "validation saves a new one")
    record = _record_of(saved, Path(run_dir), metric)
    if record is None or record["metric"] != metric:
        chosen_by = "an unknown metric" if record is None else f"val.metric={record['metric']}"
        log.warning("%s was chosen by %s, not val.metric=%s: the next validation replaces it", path, chosen_by,
                    metric)
        return _Best()
    return _Best(float(record["value"]), int(saved["iteration"]))


def _lfw_pairs(val: DictConfig) -> LfwPairs:
    pairs_file = abs_path(val.pairs)
    if not pairs_file.is_file():
        raise FacetrainError(f"val.pairs={pairs_file} does not exist; point val.root / val.pairs at an LFW-style "
                             "evaluation tree and its pairs.txt, set val.root=null to validate on val.sets only, "
                             "or turn validation off with val.every=0")
    per_fold = val.get("pairs_per_fold")
    full = parse_lfw_pairs(pairs_file)
    return first_pairs_per_fold(full, int(per_fold)) if per_fold else full


class ValidationHook(Hook):
    """Args:
        val: the `val` config (every, root, pairs, sets, bin_root, threshold_search, metric, mirror, batch_size,
            pairs_per_fold).
        data: the `data` config (the training fit).
        iterations: the run's length (a last validation at its end).
        all_ranks: run the hook on every rank, so all of them take part in gathering a sharded classifier
            for best.pt; rank 0 alone scores (the others take its numbers) and writes.
    """

    def __init__(self, val: DictConfig, data: DictConfig, iterations: int, all_ranks: bool = False):
        self.main_process_only = not all_ranks
        self.every, self.iterations = int(val.every), int(iterations)
        self.metric, self.mirror, self.batch_size = str(val.metric), str(val.mirror), int(val.batch_size)
        self.fit = str(data.get("fit", "resize"))
        self.root = abs_path(val.root) if val.get("root") else None
        self.pairs = _lfw_pairs(val) if self.root is not None else None
        bin_root = abs_path(val.bin_root) if val.get("bin_root") else None
        self.sets = read_sets(bin_paths(val.sets, "val.sets", bin_root)) if val.get("sets") else []
        self.threshold_search = str(val.get("threshold_search", "insightface"))
        if self.threshold_search not in THRESHOLD_SEARCHES:
            raise FacetrainError(f"val.threshold_search={self.threshold_search} is not one of "
                                 f"{', '.join(THRESHOLD_SEARCHES)}")
        if self.pairs is None and not self.sets:
            raise FacetrainError("validation has nothing to score: val.root=null and no val.sets; give an LFW-style "
                                 "tree (val.root) or .bin files (val.sets=[/data/lfw.bin]), or set val.every=0")
        self.best = _Best()
        self.scored: dict[str, tuple[np.ndarray, np.ndarray]] = {}  # the last validation's pairs, per set

    def on_start(self, state: TrainState) -> None:
        """A resumed run continues from the score its best.pt was saved for (a fresh run from nothing)."""
        if state.start > 0:
            self.best = saved_best(state.run_dir, self.metric)
        if self.best.iteration:
            log.info("resumed validation: best %s %.4f at iteration %d", self.metric, self.best.value,
                     self.best.iteration)

    def after_step(self, state: TrainState) -> None:
        if state.iteration % self.every == 0 or state.iteration == self.iterations:
            self.validate(state)

    def _score(self, backbone, device) -> dict[str, float]:
        """lfw/... of the tree and bin/<set>/... of each `.bin` set, as `facetrain eval lfw|bin` name them; each
        set's (labels, cosine scores) are kept in `self.scored` for calibration.json."""
        channels, metrics, scored = int(getattr(backbone, "in_channels", 3)), {}, self.scored
        settings = {"mirror": self.mirror, "batch_size": self.batch_size, "progress": False, "fit": self.fit,
                    "channels": channels}
        if self.pairs is not None:
            features = embed_images(backbone, self.root, self.pairs.images, device, **settings)
            numbers, scores = lfw_metrics(self.pairs, Features(features, list(self.pairs.images)))
            metrics |= numbers
            scored["lfw"] = (self.pairs.same, scores)
        if self.sets:
            features = embed_encoded(backbone, [b for s in self.sets for b in s.images],
                                     [f"{i} of {s.path}" for s in self.sets for i in range(len(s.images))],
                                     device, **settings)
            numbers, scores = sets_metrics(self.sets, features, self.threshold_search)
            metrics |= numbers
            scored |= {f"bin/{s.name}": (s.same, scores[s.name]) for s in self.sets}
        return metrics

    def _calibrate(self, state: TrainState, scored: dict[str, tuple[np.ndarray, np.ndarray]]) -> None:
        """calibration.json of the run: the weights of this iteration (checkpoints/last.pt once it is saved)."""
        checkpoint = checkpoint_path(state.run_dir, "last")
        data = {"lfw": str(self.root)} | {f"bin/{s.name}": str(s.path) for s in self.sets}
        records = {key: calibration_record("validation", key, same, scores, pairs_of="image", checkpoint=checkpoint,
                                           iteration=state.iteration, mirror=self.mirror, data=data[key])
                   for key, (same, scores) in scored.items()}
        write_calibration([Path(state.run_dir)], records)

    def _main_scores(self, state: TrainState) -> dict[str, float]:
        """Rank 0's scores on every rank (its error raised on every rank). The ranks share weights but not
        BatchNorm statistics (DDP hands out rank 0's before each forward, then each rank's batch moves its own),
        so scores of their own could disagree on whether best.pt improved, and with a sharded classifier a save
        is a collective: the ranks that save would wait forever for those that do not."""
        return main_outcome(lambda: self._score(state.model.backbone, state.device))

    @torch.no_grad()
    def validate(self, state: TrainState) -> dict[str, float]:
        self.scored = {}
        if self.main_process_only:  # rank 0 alone runs this hook
            metrics = self._score(state.model.backbone, state.device)
        else:
            metrics = self._main_scores(state)
        state.model.train()  # embedding put the backbone in eval mode
        if self.metric not in metrics:
            raise FacetrainError(f"val.metric={self.metric} is not one of {', '.join(sorted(metrics))}")
        values = {f"val/{k}": v for k, v in metrics.items()}
        value = float(metrics[self.metric])  # a plain float: checkpoints load with weights_only=True
        if value > self.best.value:
            self.best = _Best(value, state.iteration)
            state.save(checkpoint_path(state.run_dir, "best"), {"val_best": {"metric": self.metric, "value": value}})
        values |= {f"val/best/{self.metric}": self.best.value, "val/best_iteration": self.best.iteration}
        log.info("validation at iteration %d: %s %.4f (best %.4f at iteration %d)", state.iteration, self.metric,
                 value, self.best.value, self.best.iteration)
        state.pending_scalars |= values  # TensorBoardHook writes them at this iteration
        if is_main_process():
            update_metrics(Path(state.run_dir), values)
            if self.scored:
                self._calibrate(state, self.scored)
        return values
