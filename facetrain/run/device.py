"""The one place that decides where tensors live."""

from __future__ import annotations

import os

import torch

from facetrain.distributed.process_group import launched_world_size, local_rank
from facetrain.errors import FacetrainError

__all__ = ["pick_device"]


def pick_device(name: str = "auto") -> torch.device:
    """`auto` = CUDA when present, else CPU; `cpu`, `cuda`, `cuda:1` as asked. Under torchrun, `auto` and
    `cuda` mean this rank's own GPU, cuda:LOCAL_RANK; a fixed `cuda:N` is refused where several ranks share a
    machine (they would all drive one GPU)."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError:
        raise FacetrainError(f"device={name} is not a device; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise FacetrainError(f"device={name} asked for CUDA but none is available; use device=auto or device=cpu")
    if device.type == "cuda" and device.index is not None and int(os.environ.get("LOCAL_WORLD_SIZE", "1")) > 1:
        raise FacetrainError(f"device={name} would put all {os.environ['LOCAL_WORLD_SIZE']} ranks of this machine on "
                             "one GPU (NCCL refuses that); use device=cuda or device=auto: each rank takes its "
                             "own, cuda:LOCAL_RANK")
    if device.type == "cuda" and device.index is None and launched_world_size() > 1:
        if local_rank() >= torch.cuda.device_count():
            raise FacetrainError(f"this rank's GPU cuda:{local_rank()} does not exist ({torch.cuda.device_count()} "
                                 "GPUs); start at most that many processes per machine (--nproc_per_node / nproc)")
        return torch.device("cuda", local_rank())
    return device
