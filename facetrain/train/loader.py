"""The training DataLoader: iteration-exact batches (P x K identity-balanced when the loss asks for them)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch.utils.data import DataLoader, Dataset

from facetrain.data.identity_dataset import IdentityDataset
from facetrain.data.images.collate import image_collate
from facetrain.data.images.device_decode import DeviceDecodedBatches, collate_encoded
from facetrain.data.loader_workers import loader_workers
from facetrain.data.samplers.iteration import IterationBatchSampler
from facetrain.data.samplers.pk import PKBatchSampler
from facetrain.data.samplers.rank_share import RankShare
from facetrain.distributed.rank import rank, world_size
from facetrain.errors import FacetrainError
from facetrain.losses import FaceLoss
from facetrain.train.hooks.signals import ignore_stop_signals

__all__ = ["batch_sampler", "training_loader"]


def batch_sampler(dataset: Dataset, loss: FaceLoss, batch_size: int, seed: int, start: int):
    """P x K batches when the loss needs identity-balanced batches (`samples_per_identity` = K), else shuffled ones.

    Both are functions of (seed, iteration), so a run resumed at `start` sees the batches it would have seen.
    """
    k = int(loss.samples_per_identity)
    if not k:
        return IterationBatchSampler(len(dataset), batch_size, seed, start)
    labels = getattr(dataset, "labels", None)
    if labels is None:
        raise FacetrainError(f"{type(dataset).__name__} does not expose its labels, which P x K batches need")
    return PKBatchSampler(labels, batch_size, k, seed, start)


def training_loader(cfg: DictConfig, dataset: Dataset, loss: FaceLoss, start: int, pin_memory: bool,
                    device: torch.device | None = None) -> DataLoader | DeviceDecodedBatches:
    """`batch_size` is the global batch: under torchrun each rank loads its block of every global batch
    (of a P x K batch, P / N whole identities: P must be a multiple of the world size N).

    With data.decode=cuda the workers hand over JPEG bytes and each batch is decoded on `device`
    (`device_decode`, not measured on a GPU)."""
    encoded = _decode_on_device(cfg, dataset, device)
    sampler = batch_sampler(dataset, loss, int(cfg.batch_size), int(cfg.seed), start)
    k = int(loss.samples_per_identity)
    if world_size() > 1 and k and (int(cfg.batch_size) // k) % world_size():
        raise FacetrainError(
            f"batch_size={cfg.batch_size} holds {int(cfg.batch_size) // k} identities of {k} images, which "
            f"{world_size()} processes cannot share whole (an identity's images would straddle two ranks and "
            f"lose their pairs); pick a batch_size that is a multiple of {k * world_size()}")
    if world_size() > 1:
        sampler = RankShare(sampler, rank(), world_size())
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=loader_workers(cfg.data.num_workers),
                        pin_memory=pin_memory, worker_init_fn=ignore_stop_signals,
                        collate_fn=collate_encoded if encoded else image_collate(cfg.get("channels_last", False)))
    if not encoded:
        return loader
    return DeviceDecodedBatches(loader, dataset, device, dataset.input_size, dataset.fit)


def _decode_on_device(cfg: DictConfig, dataset: Dataset, device: torch.device | None) -> bool:
    """True (and the dataset switched to JPEG bytes) for data.decode=cuda; refused where it cannot work."""
    decode = str(cfg.data.get("decode", "cpu"))
    if decode == "cpu":
        return False
    if decode != "cuda":
        raise FacetrainError(f"data.decode={decode!r} is not known; use cpu (loader workers) or cuda (nvJPEG)")
    if device is None or device.type != "cuda":
        raise FacetrainError(f"data.decode=cuda decodes on the GPU but this run trains on {device}; "
                             "use data.decode=cpu or device=cuda")
    if not isinstance(dataset, IdentityDataset):
        raise FacetrainError(f"data.decode=cuda reads face images; {type(dataset).__name__} has none, "
                             "use data.decode=cpu")
    dataset.encoded = True
    return True
