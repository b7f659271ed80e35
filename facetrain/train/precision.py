"""Numeric precision of training: `precision=auto|bf16|fp16|fp32`, autocast, GradScaler.

Autocast covers the backbone. Of the loss, only the classifier's matmul (features x class weights, the
biggest GEMM of a many-identity run) runs in the run's precision, its output back in fp32 (`class_matmul`),
as insightface's arcface_torch does; the head (L2 x alpha), the margins (ArcFace's cos(theta + m)), the
softmax's max, sum and log and the cross-entropy stay in fp32.
"""

from __future__ import annotations

import contextlib
import logging

import torch
import torch.distributed as dist

from facetrain.distributed.rank import world_size
from facetrain.errors import FacetrainError

__all__ = ["PRECISIONS", "ResumableGradScaler", "autocast_dtype", "backbone_autocast", "resolve_precision"]

log = logging.getLogger(__name__)

PRECISIONS = ("auto", "bf16", "fp16", "fp32")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": None}


def _bf16_on_gpu() -> bool:
    """Native bf16 (Ampere and later); torch's emulated bf16 on older GPUs is slower than fp32."""
    return torch.cuda.is_bf16_supported(including_emulation=False)


def resolve_precision(precision: str, device: torch.device) -> str:
    """The precision a run trains in on `device`: bf16, fp16 or fp32.

    `auto` is bf16 on a GPU with native bf16 and fp32 elsewhere (CPU, older GPUs: ask for fp16 there).
    """
    precision = str(precision).lower()
    if precision not in PRECISIONS:
        raise FacetrainError(f"precision={precision} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if device.type == "cuda" and _bf16_on_gpu() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise FacetrainError("precision=fp16 needs CUDA (fp16 autocast and its GradScaler are a GPU path); "
                             "use precision=bf16 or fp32 on CPU")
    if precision == "bf16" and device.type == "cuda" and not _bf16_on_gpu():
        raise FacetrainError(f"precision=bf16 but {torch.cuda.get_device_name(device)} has no native bf16; "
                             "use precision=fp16 (or fp32)")
    return precision


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of a resolved precision (None: fp32, no autocast)."""
    return _DTYPES[precision]


def backbone_autocast(device_type: str, dtype: torch.dtype | None):
    """The context the backbone's forward runs in: autocast to `dtype`, or nothing for fp32."""
    return torch.autocast(device_type, dtype=dtype) if dtype is not None else contextlib.nullcontext()


class ResumableGradScaler(torch.amp.GradScaler):
    """A GradScaler that resumes from a checkpoint of another precision (a run saved in bf16/fp32 holds an
    empty scaler state, and an fp16 resume then starts with a fresh scale instead of failing), and that keeps
    one loss scale on every rank.

    torch's scaler backs off on the overflows this rank's gradients hold. Under DDP those are the same on
    every rank (the gradients are all-reduced), but a sharded classifier's block is each rank's own: an
    overflow in one block alone would halve that rank's scale only, and from then on DDP would average
    gradients scaled differently and each rank unscale its own way (the replicas drift apart, silently).
    So under torchrun the overflow flags are max-reduced first: all ranks back off together.
    """

    def update(self, new_scale: float | torch.Tensor | None = None) -> None:
        if self.is_enabled() and new_scale is None and world_size() > 1:
            for state in self._per_optimizer_states.values():
                for found_inf in state["found_inf_per_device"].values():
                    dist.all_reduce(found_inf, op=dist.ReduceOp.MAX)
        super().update(new_scale)

    def load_state_dict(self, state_dict: dict) -> None:
        if self.is_enabled() and not state_dict:
            log.info("the checkpoint has no fp16 loss scale (saved in another precision); starting a fresh one")
            return
        super().load_state_dict(state_dict)
