"""TrainState: everything one training step reads and changes, built from a config."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch
from omegaconf import DictConfig
from torch import nn

from facetrain.distributed.rank import is_main_process, rank, world_size
from facetrain.losses import FaceLoss
from facetrain.models.face_model import FaceModel
from facetrain.run.checkpoint import capture_state, checkpoint_path, save_checkpoint
from facetrain.sharded.fused import fuse_class_updates
from facetrain.sharded.rows import building_rows
from facetrain.sharded.shards import ClassShard
from facetrain.sharded.state import gather_checkpoint, setup_class_shards
from facetrain.train.build import build_optimizer, build_parts, build_scheduler, named_parts
from facetrain.train.finetune import finetune_settings, freeze_batchnorm
from facetrain.train.model_and_loss import ModelAndLoss, wire_network
from facetrain.train.precision import ResumableGradScaler, autocast_dtype, resolve_precision
from facetrain.train.progress import RunningMeans
from facetrain.train.speed import configure_backends, prepare_backbone

__all__ = ["TrainState", "build_state"]


@dataclass
class TrainState:
    """The model, loss and their optimizer/schedule/scaler, where they run, and how far training got."""

    cfg: DictConfig
    model: FaceModel
    loss: FaceLoss
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device
    num_classes: int
    run_dir: Path
    precision: str = "fp32"  # resolved: bf16, fp16 (with the GradScaler) or fp32
    channels_last: bool = False  # batches go to the backbone in channels_last memory format
    clip_grad_norm: float | None = None  # max global gradient norm (after unscaling); None = no clipping
    clip_scope: str = "all"  # what clipping covers: all (+ the loss's parameters) or model (backbone + head)
    iteration: int = 0  # iterations finished
    start: int = 0  # the iteration this process started (or resumed) from
    meter: RunningMeans = field(default_factory=RunningMeans)  # batch statistics since the last log
    last_means: dict[str, float] = field(default_factory=dict)  # the most recent logged window's means
    skipped_steps: int = 0  # steps skipped for non-finite gradients, since this process started
    bad_windows: int = 0  # consecutive logged windows whose loss was not finite
    pending_scalars: dict[str, float] = field(default_factory=dict)  # to log at this iteration (validation)
    buffer_backup: list[torch.Tensor] | None = None  # the buffers before the current step (see train_step)
    network: nn.Module | None = None  # what the step runs: ModelAndLoss(model, loss), DDP-wrapped under torchrun
    class_shards: list[ClassShard] = field(default_factory=list)  # the class-weight losses' blocks (see sharding)
    fused_class_update: bool = False  # class weights stepped chunk by chunk by the step (facetrain.sharded.fused)

    def __post_init__(self):
        if self.network is None:
            self.network = ModelAndLoss(self.model, self.loss, autocast_dtype(self.precision))

    @cached_property
    def buffers(self) -> list[torch.Tensor]:
        """The model's and loss's buffers (BatchNorm running statistics, centers) that forward passes update."""
        return [*self.model.buffers(), *self.loss.buffers()]

    @property
    def parameters(self) -> list[torch.nn.Parameter]:
        """Every parameter the optimizer updates, in its group order (what clipping and the finite check see)."""
        return [p for group in self.optimizer.param_groups for p in group["params"]]

    @cached_property
    def clip_groups(self) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
        """(the parameters `clip_grad_norm` clips, the rest), each in optimizer order. `all` clips every
        parameter by one global norm; `model` the backbone and head alone, as insightface's arcface_torch
        clips its backbone (with L2-softmax at alpha=64 the unclipped classifier then diverges)."""
        if self.clip_scope == "all":
            return self.parameters, []
        model = {id(p) for p in self.model.parameters()}
        return [p for p in self.parameters if id(p) in model], [p for p in self.parameters if id(p) not in model]

    @property
    def stateful(self) -> dict:
        """The training objects whose state a checkpoint saves besides the model's parts."""
        return {"optimizer": self.optimizer, "scheduler": self.scheduler, "scaler": self.scaler}

    def scalars(self) -> dict[str, float]:
        """Learned or derived values worth logging (alpha and its bound, a learned scale, ...)."""
        return self.model.head.scalars() | self.loss.scalars()

    @property
    def sharded(self) -> bool:
        """True when the class weights are split over the ranks (`shard_classifier=true` under torchrun)."""
        return any(shard.world_size > 1 for shard in self.class_shards)

    def capture(self) -> dict:
        """The checkpoint of this state. With a sharded classifier a collective (every rank calls it): the
        full class-weight matrices and their momentum are assembled on rank 0 (chunk by chunk), so the
        checkpoint fits any world size; the other ranks' result is not a checkpoint."""
        parts = named_parts(self.model, self.loss)
        saved = capture_state(parts, self.stateful, self.iteration, self.cfg, self.num_classes, self.device)
        return gather_checkpoint(saved, parts, self.optimizer) if self.sharded else saved

    def save(self, path: Path, extra: dict | None = None) -> None:
        """Write this state's checkpoint, plus the plain values of `extra`, to `path` from rank 0. Every rank
        calls it (a sharded classifier's rows are sent to rank 0 from all of them)."""
        if self.sharded or is_main_process():
            saved = self.capture()
        if is_main_process():
            save_checkpoint(path, saved | (extra or {}))

    @property
    def checkpoint(self) -> Path:
        return checkpoint_path(self.run_dir)


def build_state(cfg: DictConfig, num_classes: int, device: torch.device, run_dir: Path) -> TrainState:
    """Seeded build of model and loss on `device`, then optimizer, LR schedule and grad scaler; under torchrun
    the forward path is wrapped in DistributedDataParallel (every rank builds the same seeded weights; with
    `shard_classifier=true` each draws only its block of the class weights, the rows one process draws). The precision, memory format and
    compilation (`precision`, `channels_last`, `compile`) apply here."""
    precision = resolve_precision(cfg.get("precision", "auto"), device)
    configure_backends(cfg, device)
    torch.manual_seed(int(cfg.seed))
    shard = bool(cfg.get("shard_classifier", False)) and world_size() > 1
    with building_rows(rank(), world_size()) if shard else contextlib.nullcontext():
        model, loss = build_parts(cfg, num_classes)  # sharded: each rank draws only its rows of the class weights
    model, loss = model.to(device), loss.to(device)
    if finetune_settings(cfg)["freeze_bn"]:  # before the optimizer: frozen scales and shifts are not in it
        freeze_batchnorm(model.backbone)
    shards = setup_class_shards(loss, int(cfg.seed), shard, rank(), world_size())
    channels_last = bool(cfg.get("channels_last", False))
    prepare_backbone(model.backbone, channels_last)
    optimizer = build_optimizer(cfg, model, loss)
    fused = bool(cfg.get("fused_class_update", False))  # the class weights' SGD step chunk by chunk
    if fused:
        fuse_class_updates(loss, optimizer, precision, world_size())
    scheduler = build_scheduler(cfg, optimizer)
    scaler = ResumableGradScaler(device.type, enabled=precision == "fp16")
    clip = cfg.get("clip_grad_norm")
    network = wire_network(model, loss, autocast_dtype(precision), device, world_size(),
                           bool(cfg.get("sync_bn", False)), bool(cfg.get("compile", False)))
    return TrainState(cfg, model, loss, optimizer, scheduler, scaler, device, num_classes, Path(run_dir), precision,
                      channels_last, float(clip) if clip else None, str(cfg.get("clip_grad_scope", "all")).lower(),
                      network=network, class_shards=shards, fused_class_update=fused)
