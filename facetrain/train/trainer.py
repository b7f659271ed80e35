"""The training loop: iterations, SGD + multistep LR, checkpoints, TensorBoard, metrics.json."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path

import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch.utils.data import DataLoader
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from facetrain.config import abs_path, check_alpha
from facetrain.data.augment import random_hflip
from facetrain.data.pk_sampler import PKBatchSampler
from facetrain.data.sampler import IterationBatchSampler
from facetrain.errors import FacetrainError
from facetrain.train.build import build_optimizer, build_parts
from facetrain.train.checkpoint import load_checkpoint, restore_scheduler, save_checkpoint
from facetrain.train.device import pick_device
from facetrain.train.metrics_file import update_metrics
from facetrain.train.progress import RunningMeans, batch_stats

__all__ = ["train"]

log = logging.getLogger(__name__)


def _validate(cfg: DictConfig) -> None:
    check_alpha(cfg.alpha)
    for key in ("iterations", "batch_size"):
        if int(cfg[key]) <= 0:
            raise FacetrainError(f"{key}={cfg[key]} must be a positive integer")


def _checkpoint_state(parts, optimizer, scheduler, scaler, iteration: int, cfg: DictConfig, num_classes: int):
    rng = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return {
        "model": {name: module.state_dict() for name, module in parts.items()},
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict(),
        "scaler": scaler.state_dict(),
        "iteration": iteration,
        "rng": rng,
        "num_classes": num_classes,
        "config": OmegaConf.to_yaml(cfg, resolve=True),
    }


def _resume(path: Path, parts, optimizer, scheduler, scaler) -> int:
    if not path.exists():
        raise FacetrainError(
            f"resume=true but {path} does not exist; point hydra.run.dir=... at the run to continue"
        )
    state = load_checkpoint(path)
    for name, module in parts.items():
        module.load_state_dict(state["model"][name])
    optimizer.load_state_dict(state["optimizer"])
    configured = {k: getattr(scheduler, k) for k in ("milestones", "gamma") if hasattr(scheduler, k)}
    restore_scheduler(scheduler, state["scheduler"])
    for key, value in configured.items():  # the config's schedule wins (e.g. a run extended on resume)
        setattr(scheduler, key, value)
    scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(state["rng"]["torch"])
    if "cuda" in state["rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["rng"]["cuda"])
    log.info("resumed from %s at iteration %d", path, state["iteration"])
    return int(state["iteration"])


def _batch_sampler(dataset, loss, batch_size: int, seed: int, start: int):
    """P x K identity-balanced batches when the loss asks for them (`samples_per_identity`), else shuffled ones."""
    k = int(getattr(loss, "samples_per_identity", 0) or 0)
    if not k:
        return IterationBatchSampler(len(dataset), batch_size, seed, start)
    labels = getattr(dataset, "labels", None)
    if labels is None and hasattr(dataset, "index"):
        labels = dataset.index.labels
    if labels is None:
        raise FacetrainError(f"{type(dataset).__name__} does not expose its labels, which P x K batches need")
    return PKBatchSampler(labels, batch_size, k, seed, start)


def _check_finite(loss: float, iteration: int, window: int) -> None:
    """Stop a diverged run with a sentence, instead of training on NaNs and writing nulls."""
    if not math.isfinite(loss):
        raise FacetrainError(
            f"the training loss became {loss} within the {window} iterations before iteration {iteration}; "
            "lower the learning rate (optim.lr=...) or check the data"
        )


def _log_scalars(writer: SummaryWriter, bar: tqdm, means: dict, extra: dict, iteration: int) -> None:
    for key, value in (means | extra).items():
        writer.add_scalar(f"train/{key}", value, iteration)
    bar.set_postfix(loss=f"{means['loss']:.3f}", acc=f"{means.get('acc', float('nan')):.3f}",
                    lr=f"{extra['lr']:.2g}", refresh=False)


def train(cfg: DictConfig) -> dict:
    """Train the configured backbone + head + loss; return the final metrics (also in metrics.json)."""
    _validate(cfg)
    run_dir = abs_path(cfg.run_dir)
    torch.manual_seed(int(cfg.seed))
    device = pick_device(cfg.device)
    dataset = instantiate(cfg.data.dataset)
    if hasattr(dataset, "write_report"):  # counts, removed identities, skipped files -> the run directory (and log)
        dataset.write_report(run_dir)
    else:
        log.info("training data: %d images of %d classes", len(dataset), dataset.num_classes)
    parts = build_parts(cfg, dataset.num_classes).to(device)
    optimizer = build_optimizer(cfg, parts)
    scheduler = instantiate(cfg.schedule)(optimizer)
    use_amp = bool(cfg.amp) and device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    ckpt_path = run_dir / "checkpoints" / "last.pt"
    start = _resume(ckpt_path, parts, optimizer, scheduler, scaler) if cfg.resume else 0
    iterations, seed, flip = int(cfg.iterations), int(cfg.seed), bool(cfg.data.hflip)
    loader = DataLoader(
        dataset,
        batch_sampler=_batch_sampler(dataset, parts["loss"], int(cfg.batch_size), seed, start),
        num_workers=int(cfg.data.num_workers),
        pin_memory=device.type == "cuda",
    )
    writer = SummaryWriter(str(run_dir / "tb"), purge_step=start + 1)
    meter, last = RunningMeans(), {}

    def save(it: int) -> None:
        save_checkpoint(ckpt_path, _checkpoint_state(parts, optimizer, scheduler, scaler, it, cfg, dataset.num_classes))

    parts.train()
    t0, iteration = time.perf_counter(), start
    with tqdm(total=iterations, initial=start, desc="train", disable=not cfg.progress, dynamic_ncols=True) as bar:
        for images, labels in loader if start < iterations else []:
            iteration += 1
            images = images.to(device, non_blocking=True)
            if flip:
                images = random_hflip(images, seed, iteration)
            labels = labels.to(device, non_blocking=True)
            with torch.autocast(device.type, enabled=use_amp):
                embeddings = parts["backbone"](images)
                out = parts["loss"](parts["head"](embeddings), labels)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(out.total).backward()
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            meter.add(batch_stats(out, embeddings, labels))
            bar.update(1)
            if iteration % int(cfg.log_every) == 0 or iteration == iterations:
                last = meter.pop()
                _check_finite(last["loss"], iteration, int(cfg.log_every))
                extra = {"lr": optimizer.param_groups[0]["lr"]} | parts["head"].scalars() | parts["loss"].scalars()
                _log_scalars(writer, bar, last, extra, iteration)
            if iteration % int(cfg.checkpoint_every) == 0 or iteration == iterations:
                save(iteration)
            if iteration >= iterations:
                break
    writer.close()
    seconds = time.perf_counter() - t0
    done = iteration - start
    metrics = {f"train/{k}": v for k, v in last.items()}
    metrics |= {f"train/{k}": v for k, v in (parts["head"].scalars() | parts["loss"].scalars()).items()}
    metrics |= {"train/iterations": iteration, "train/seconds": seconds,
                "train/images_per_s": done * int(cfg.batch_size) / seconds if done else 0.0}
    log.info("finished %d iterations in %.1f s; run directory %s", iteration, seconds, run_dir)
    return update_metrics(run_dir, metrics)
