"""Build what training optimizes — the FaceModel (backbone + head) and the loss — and its optimizer and schedule."""

from __future__ import annotations

from hydra.utils import instantiate
from omegaconf import DictConfig
from torch import nn
from torch.optim.lr_scheduler import ChainedScheduler, LinearLR, LRScheduler

from facetrain.errors import FacetrainError
from facetrain.losses import FaceLoss
from facetrain.models.face_model import FaceModel
from facetrain.models.trained_run import build_face_model
from facetrain.train.finetune import finetune_settings

__all__ = ["build_optimizer", "build_parts", "build_scheduler", "named_parts", "param_groups"]


def build_parts(cfg: DictConfig, num_classes: int) -> tuple[FaceModel, FaceLoss]:
    """(backbone + head, loss). The head and loss get `num_classes` (and the loss `embedding_dim`) here,
    from the data, so no config has to repeat them."""
    model = build_face_model(cfg, num_classes)
    loss = instantiate(cfg.loss, embedding_dim=model.embedding_dim, num_classes=num_classes)
    return model, loss


def named_parts(model: FaceModel, loss: FaceLoss) -> dict[str, nn.Module]:
    """The parts a checkpoint's `model` entry holds, by name."""
    return {"backbone": model.backbone, "head": model.head, "loss": loss}


def param_groups(model: nn.Module, lr: float, weight_decay: float,
                 prefix_multipliers: dict[str, tuple[float, float]] | None = None) -> list[dict]:
    """Optimizer parameter groups, one per distinct (lr, weight-decay) multiplier pair.

    A loss declares `param_multipliers() -> {own parameter name: (lr_mult, wd_mult)}` (class agents, a
    learned scale or radius; see `FaceLoss`); parameters whose name starts with a key of
    `prefix_multipliers` get its pair (the backbone's when fine-tuning); every other parameter gets (1, 1).
    Groups come in the order their first parameter appears, so a checkpoint's optimizer state always lines up.

    Args:
        model: the modules to optimize.
        lr: the base learning rate.
        weight_decay: the base weight decay.
        prefix_multipliers: {parameter-name prefix: (lr_mult, wd_mult)}.

    Returns:
        A list of {"params", "lr", "weight_decay"} dicts for a torch optimizer.
    """
    special = {}
    for prefix, module in model.named_modules():
        if isinstance(module, FaceLoss):
            for name, mult in module.param_multipliers().items():
                special[f"{prefix}.{name}" if prefix else name] = (float(mult[0]), float(mult[1]))
    groups: dict[tuple[float, float], list] = {}
    for name, param in model.named_parameters():
        if param.requires_grad:
            default = next((m for p, m in (prefix_multipliers or {}).items() if name.startswith(p)), (1.0, 1.0))
            groups.setdefault(special.get(name, default), []).append(param)
    return [{"params": params, "lr": lr * lr_mult, "weight_decay": weight_decay * wd_mult}
            for (lr_mult, wd_mult), params in groups.items()]


def build_optimizer(cfg: DictConfig, model: FaceModel, loss: FaceLoss):
    """instantiate(cfg.optim) over `param_groups` of model then loss (base lr and weight decay from cfg.optim);
    the backbone's rate is `finetune.backbone_lr_mult` x optim.lr."""
    both = nn.ModuleList([model, loss])  # backbone, head, loss: the parameter order checkpoints rely on
    mult = float(finetune_settings(cfg)["backbone_lr_mult"])
    groups = param_groups(both, float(cfg.optim.get("lr", 1e-3)), float(cfg.optim.get("weight_decay", 0.0)),
                          {"0.backbone.": (mult, 1.0)} if mult != 1.0 else None)
    return instantiate(cfg.optim)(groups)


def build_scheduler(cfg: DictConfig, optimizer) -> LRScheduler:
    """instantiate(cfg.schedule) over the optimizer (any torch LR scheduler, stepped once per iteration),
    preceded by a linear warm-up of `warmup.iterations` when that is > 0.

    The warm-up multiplies the schedule's rate (torch's ChainedScheduler of LinearLR and the schedule), so
    milestones stay absolute iterations: lr(t) = lr * warm(t) * schedule(t). That product is exact for
    the multiplicative schedules (multistep, poly, cosine with eta_min = 0).
    """
    schedule = instantiate(cfg.schedule)(optimizer)
    warmup = cfg.get("warmup") or {}
    iterations = int(warmup.get("iterations", 0) or 0)
    if iterations <= 0:
        return schedule
    start = float(warmup.get("start_factor", 0.01))
    if not 0 < start <= 1:
        raise FacetrainError(f"warmup.start_factor={start} must be in (0, 1]: the first iteration's share of optim.lr")
    warm = LinearLR(optimizer, start_factor=start, end_factor=1.0, total_iters=iterations)
    return ChainedScheduler([warm, schedule], optimizer)
