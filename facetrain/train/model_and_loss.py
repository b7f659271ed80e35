"""ModelAndLoss: the FaceModel and the loss as one module, the unit DistributedDataParallel wraps."""

from __future__ import annotations

import torch
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.losses import FaceLoss
from facetrain.models.face_model import FaceModel
from facetrain.sharded.state import sharded_parameter_names
from facetrain.train.precision import backbone_autocast
from facetrain.train.speed import compile_backbone

__all__ = ["ModelAndLoss", "wire_network", "wrap_for_ranks"]


class ModelAndLoss(nn.Module):
    """images, labels -> (embeddings, LossOutput).

    The loss owns parameters too (class weights, a learned scale), so DDP wraps both: every trained
    parameter's gradient is then averaged over the ranks. Each rank's loss is the mean over its share of the
    batch, and DDP averages those, so N ranks with batch_size / N images each take the step one process takes
    with the whole batch (for losses that are plain means over the batch).

    Mixed precision: the backbone runs under autocast to `amp_dtype` (bf16, fp16), and so does the
    classifier's matmul (every loss in `loss` is told `matmul_dtype`); the head, the margins and the softmax
    run in fp32 (see `facetrain.train.precision`).
    """

    def __init__(self, model: FaceModel, loss: FaceLoss, amp_dtype: torch.dtype | None = None):
        super().__init__()
        self.model, self.loss, self.amp_dtype = model, loss, amp_dtype
        for module in loss.modules():
            if isinstance(module, FaceLoss):
                module.matmul_dtype = amp_dtype

    def forward(self, images: torch.Tensor, labels: torch.Tensor):
        with backbone_autocast(images.device.type, self.amp_dtype):
            embeddings = self.model.backbone(images)
        if self.amp_dtype is not None:  # back to fp32 for the head and loss (a float64 model stays float64)
            embeddings = embeddings.float()
        return embeddings, self.loss(self.model.head(embeddings), labels)


def wrap_for_ranks(module: ModelAndLoss, device: torch.device, world_size: int, sync_bn: bool) -> nn.Module:
    """`module` itself in one process; under torchrun, DDP around it (SyncBatchNorm first if asked, CUDA only).

    The wrapper is only the forward path: checkpoints keep reading the unwrapped parts, so their keys never
    gain `module.` and a run saved by N processes resumes in any other number. Sharded class weights
    (each rank's own rows) are left out of DDP.
    """
    if world_size <= 1:
        return module
    if sync_bn and device.type != "cuda":
        raise FacetrainError("sync_bn=true needs CUDA (torch's SyncBatchNorm has no CPU kernel); drop it, "
                             "or train on GPUs")
    if sync_bn:
        module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
    ids = [device.index] if device.type == "cuda" else None
    # each rank's block of a sharded classifier is its own: DDP neither broadcasts nor averages it
    nn.parallel.DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        module, sharded_parameter_names(module))
    return nn.parallel.DistributedDataParallel(module, device_ids=ids)


def wire_network(model: FaceModel, loss: FaceLoss, amp_dtype: torch.dtype | None, device: torch.device,
                 world_size: int, sync_bn: bool, compile_: bool) -> nn.Module:
    """What a training step runs, in the order PyTorch asks for with DDP and torch.compile: SyncBatchNorm
    conversion, then the DDP wrapper, then compilation (of the backbone, in place: the loss's collectives
    and class sampling's data-dependent sizes stay eager, and checkpoint keys stay plain)."""
    network = wrap_for_ranks(ModelAndLoss(model, loss, amp_dtype), device, world_size, sync_bn)
    if compile_:
        compile_backbone(model.backbone)
    return network
