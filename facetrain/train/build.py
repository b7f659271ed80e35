"""Build the trainable parts (backbone, head, loss) and their optimizer from a composed config."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn

__all__ = ["build_backbone", "build_optimizer", "build_parts", "param_groups"]


def build_backbone(cfg: DictConfig) -> nn.Module:
    return instantiate(cfg.backbone)


def build_parts(cfg: DictConfig, num_classes: int) -> nn.ModuleDict:
    """backbone -> head -> loss, in one ModuleDict so their state dicts travel together.

    The head and loss get `num_classes` (and the loss `embedding_dim`) here, from the data,
    so no config has to repeat them.
    """
    backbone = build_backbone(cfg)
    head = instantiate(cfg.head, num_classes=num_classes)
    loss = instantiate(cfg.loss, embedding_dim=backbone.embedding_dim, num_classes=num_classes)
    return nn.ModuleDict({"backbone": backbone, "head": head, "loss": loss})


def param_groups(model: nn.Module, lr: float, weight_decay: float) -> list[dict]:
    """Optimizer parameter groups, one per distinct (lr, weight-decay) multiplier pair.

    A module may declare `param_multipliers() -> {own parameter name: (lr_mult, wd_mult)}` (class
    agents, a learned scale or radius); every other parameter gets (1, 1). Groups come in the order
    their first parameter appears, so a checkpoint's optimizer state always lines up.

    Args:
        model: the modules to optimize.
        lr: the base learning rate.
        weight_decay: the base weight decay.

    Returns:
        A list of {"params", "lr", "weight_decay"} dicts for a torch optimizer.
    """
    special = {}
    for prefix, module in model.named_modules():
        if hasattr(module, "param_multipliers"):
            for name, mult in module.param_multipliers().items():
                special[f"{prefix}.{name}" if prefix else name] = (float(mult[0]), float(mult[1]))
    groups: dict[tuple[float, float], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            groups.setdefault(special.get(name, (1.0, 1.0)), []).append(param)
    return [{"params": params, "lr": lr * lr_mult, "weight_decay": weight_decay * wd_mult}
            for (lr_mult, wd_mult), params in groups.items()]


def build_optimizer(cfg: DictConfig, parts: nn.Module):
    """instantiate(cfg.optim) over `param_groups` (base lr and weight decay from cfg.optim)."""
    groups = param_groups(parts, float(cfg.optim.get("lr", 1e-3)), float(cfg.optim.get("weight_decay", 0.0)))
    return instantiate(cfg.optim)(groups)
