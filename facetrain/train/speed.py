"""GPU speed settings: channels_last memory format, torch.compile, cuDNN autotuning, TF32 (off with deterministic).

Each keeps checkpoints as they are: channels_last only changes strides (a state dict loads into either
layout), and the backbone is compiled in place (`nn.Module.compile`), so its state-dict keys stay plain
(no `_orig_mod.` prefix) and a compiled run resumes uncompiled and the other way round.
"""

from __future__ import annotations

import torch
from omegaconf import DictConfig
from torch import nn

__all__ = ["compile_backbone", "configure_backends", "prepare_backbone", "to_memory_format"]


def configure_backends(cfg: DictConfig, device: torch.device) -> None:
    """On CUDA, unless `deterministic=true`: cuDNN autotuning (it picks the fastest convolution algorithm
    for each input shape, which training repeats) and TF32 for fp32 matmuls and convolutions (what an fp32
    run, or an fp32 op of a bf16 run, computes on tensor cores: 10 mantissa bits in the products, fp32
    sums). `deterministic=true` asks for deterministic cuDNN algorithms and full fp32 instead."""
    if device.type != "cuda":
        return
    deterministic = bool(cfg.get("deterministic", False))
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic
    torch.set_float32_matmul_precision("highest" if deterministic else "high")


def to_memory_format(images: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """A batch in channels_last (NHWC strides) when asked and it is an image batch; as it is otherwise."""
    return images.contiguous(memory_format=torch.channels_last) if channels_last and images.dim() == 4 else images


def prepare_backbone(backbone: nn.Module, channels_last: bool) -> nn.Module:
    """Move the backbone's conv weights to channels_last, when asked."""
    if channels_last:
        backbone.to(memory_format=torch.channels_last)
    return backbone


def compile_backbone(backbone: nn.Module) -> nn.Module:
    """torch.compile the backbone in place, once SyncBatchNorm has converted it and DDP has wrapped the
    network (`facetrain.train.model_and_loss.wire_network`): compilation happens at the first forward,
    inside DDP's, where dynamo's DDPOptimizer splits the graph at DDP's gradient-bucket boundaries so the
    all-reduce of one bucket overlaps the backward of the next."""
    backbone.compile()
    return backbone
