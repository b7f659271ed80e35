"""train(cfg): set up the state, run train_step over iteration-exact batches, call the hooks, write metrics."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from hydra.utils import instantiate
from omegaconf import DictConfig

from facetrain.config import abs_path
from facetrain.data.synth.command import ensure_synthetic
from facetrain.distributed.process_group import average_across_ranks, main_first
from facetrain.distributed.rank import is_main_process, world_size
from facetrain.errors import FacetrainError
from facetrain.run.device import pick_device
from facetrain.run.metrics_file import update_metrics
from facetrain.train.config_checks import check_train_config
from facetrain.train.finetune import check_init_from, finetune_settings, init_classifier
from facetrain.train.hooks import (
    CheckpointHook,
    DivergenceHook,
    FrozenBatchNormHook,
    Hook,
    HookList,
    ProgressBarHook,
    StopOnSignalHook,
    ValidationHook,
)
from facetrain.train.init_from import init_backbone
from facetrain.train.loader import training_loader
from facetrain.train.resume import resume
from facetrain.train.state import TrainState, build_state
from facetrain.train.step import train_step

__all__ = ["default_hooks", "loggers", "run_loop", "train"]

log = logging.getLogger(__name__)


def _validate(cfg: DictConfig) -> None:
    """Every key's type and range (config_checks), then what depends on the launch: the ranks share the batch."""
    check_init_from(cfg)
    check_train_config(cfg)
    if int(cfg.batch_size) % world_size():
        raise FacetrainError(f"batch_size={cfg.batch_size} is the global batch and must divide evenly among the "
                             f"{world_size()} processes; pick a multiple of {world_size()}")


def _load_data(cfg: DictConfig, run_dir):
    def prepare():
        if cfg.data.get("generate_if_missing"):
            ensure_synthetic(cfg.data)
        return instantiate(cfg.data.dataset)

    dataset = main_first(prepare)  # the other ranks then read what rank 0 wrote: synthetic data, the index cache
    if not is_main_process():
        return instantiate(cfg.data.dataset)
    if hasattr(dataset, "write_report"):  # counts, removed identities, skipped files -> the run directory (and log)
        dataset.write_report(run_dir)
    else:
        log.info("training data: %d images of %d classes", len(dataset), dataset.num_classes)
    return dataset


def default_hooks(cfg: DictConfig) -> list[Hook]:
    """Divergence check, validation, the loggers (TensorBoard, MLflow), progress bar, checkpoints, stop on
    SIGTERM/SIGINT/SIGUSR2 — in the order they run at each point."""
    iterations = int(cfg.iterations)
    hooks: list[Hook] = [DivergenceHook(int(cfg.log_every), int(cfg.diverged_windows))]
    if int(cfg.val.every) > 0:
        hooks.append(ValidationHook(cfg.val, cfg.data, iterations, all_ranks=bool(cfg.get("shard_classifier"))))
    if finetune_settings(cfg)["freeze_bn"]:  # after validation, which leaves the model in train mode
        hooks.append(FrozenBatchNormHook())
    return hooks + loggers(cfg) + [ProgressBarHook(iterations, bool(cfg.progress)),
                                   CheckpointHook(int(cfg.checkpoint_every), iterations), StopOnSignalHook()]


def loggers(cfg: DictConfig) -> list[Hook]:
    """The hooks of `logger` (configs/logger/: tensorboard, mlflow, a list of them, or none)."""
    return [instantiate(spec) for spec in (cfg.get("logger") or {}).values() if spec is not None]


def run_loop(state: TrainState, batches: Iterable, hooks: HookList, iterations: int, log_every: int,
             hflip: bool) -> None:
    """Step until `iterations`, calling the hooks at their points (see `Hook`)."""
    hooks.on_start(state)
    try:
        for images, labels in batches if state.iteration < iterations else []:
            state.meter.add(train_step(state, images, labels, hflip))
            if state.iteration % log_every == 0 or state.iteration == iterations:
                state.last_means = average_across_ranks(state.meter.pop())  # the global batch's, on every rank
                hooks.on_log(state, state.last_means)
            hooks.after_step(state)
            state.pending_scalars.clear()  # every logger has written this iteration's validation
            if state.iteration >= iterations:
                break
    finally:
        hooks.on_end(state)


def train(cfg: DictConfig) -> dict:
    """Train the configured backbone + head + loss; return the final metrics (also in metrics.json)."""
    _validate(cfg)
    run_dir = abs_path(cfg.run_dir)
    device = pick_device(cfg.device)
    dataset = _load_data(cfg, run_dir)
    state = build_state(cfg, dataset.num_classes, device, run_dir)
    resume(state, cfg.resume, bool(cfg.resume_strict))
    if cfg.get("init_from") and state.iteration == 0:  # a resumed run keeps its own weights
        init_backbone(state.model.backbone, str(cfg.init_from))
    if state.iteration == 0:  # finetune.classifier=class_means: class weights from the (initialized) backbone
        init_classifier(cfg, state.model, state.loss, dataset, state.num_classes, device, state.sharded)
    loader = training_loader(cfg, dataset, state.loss, state.start, pin_memory=device.type == "cuda", device=device)
    state.network.train()
    t0 = time.perf_counter()
    run_loop(state, loader, HookList(default_hooks(cfg)), int(cfg.iterations), int(cfg.log_every),
             bool(cfg.data.hflip))
    seconds = time.perf_counter() - t0
    done = state.iteration - state.start
    metrics = {f"train/{k}": v for k, v in (state.last_means | state.scalars()).items()}
    metrics |= {"train/iterations": state.iteration, "train/seconds": seconds, "train/skipped_steps": state.skipped_steps,
                "train/images_per_s": done * int(cfg.batch_size) / seconds if done else 0.0,  # all ranks together
                "train/world_size": world_size(), "train/global_batch": int(cfg.batch_size),
                "train/num_classes": state.num_classes}  # what the eq. 9 bound of a report needs
    log.info("finished %d iterations in %.1f s; run directory %s", state.iteration, seconds, run_dir)
    return update_metrics(run_dir, metrics) if is_main_process() else metrics
