"""Fine-tuning a pretrained backbone (`finetune:` keys, `experiment=finetune`): frozen BatchNorm, and class weights
that start at the mean embedding of each new class.

The backbone's learning-rate multiplier lives in `build.param_groups`; warm-up is the run's `warmup:`.
"""

from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from facetrain.data.images.collate import image_collate
from facetrain.distributed.rank import rank, world_size
from facetrain.errors import FacetrainError
from facetrain.losses import FaceLoss
from facetrain.models.face_model import FaceModel

__all__ = ["CLASSIFIER_INITS", "batchnorms", "check_init_from", "class_mean_weights", "class_weight_of", "finetune_settings",
           "freeze_batchnorm", "init_classifier"]

log = logging.getLogger(__name__)

CLASSIFIER_INITS = ("random", "class_means")
_DEFAULTS = {"backbone_lr_mult": 1.0, "freeze_bn": False, "classifier": "random"}


def finetune_settings(cfg: DictConfig) -> dict:
    """The run's `finetune:` keys, with the defaults of a plain run (the section may be absent)."""
    return _DEFAULTS | dict(cfg.get("finetune") or {})


def check_init_from(cfg: DictConfig) -> None:
    """experiment=finetune (`finetune.needs_init_from`) without init_from: one line, not a run from scratch."""
    if finetune_settings(cfg).get("needs_init_from") and not cfg.get("init_from"):
        raise FacetrainError("experiment=finetune needs the model to start from: init_from=runs/train/RUN (a facetrain "
                             "run or checkpoint) or init_from=backbone.pth (arcface_torch iresnet)")


def batchnorms(module: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Every BatchNorm (1d, 2d, 3d, SyncBatchNorm) inside `module`."""
    return [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def freeze_batchnorm(backbone: nn.Module) -> int:
    """Keep the backbone's BatchNorm as pretrained: running statistics used, not updated (eval mode), and
    scale and shift out of training. Small fine-tuning batches then cannot drag the
    statistics the pretrained weights were fitted to. Returns how many layers were frozen.

    Eval mode does not survive `.train()`: the training loop calls this again after anything that switches
    the model back (`FrozenBatchNormHook`).
    """
    layers = batchnorms(backbone)
    for layer in layers:
        layer.eval()
        for param in layer.parameters():
            param.requires_grad_(False)
    return len(layers)


def class_weight_of(loss: FaceLoss) -> tuple[nn.Parameter, nn.Parameter | None]:
    """(the [classes, D] class-weight matrix, its bias or None) of a softmax or margin-family loss."""
    weight = getattr(loss, "weight", None)
    if isinstance(weight, nn.Parameter) and weight.ndim == 2:
        return weight, None
    classifier = getattr(loss, "classifier", None)
    if isinstance(classifier, nn.Linear):
        return classifier.weight, classifier.bias
    raise FacetrainError(f"finetune.classifier=class_means needs a loss with one weight row per class (softmax, the "
                         f"margin family); {type(loss).__name__} has none, use finetune.classifier=random")


@torch.no_grad()
def class_mean_weights(model: FaceModel, dataset: Dataset, num_classes: int, device: torch.device,
                       batch_size: int = 256, num_workers: int = 0) -> torch.Tensor:
    """[classes, D] unit rows: each class's mean L2-normalized feature (what the loss sees, after the head),
    normalized again. One inference pass over the training set, no mirroring or augmentation; under torchrun
    each rank embeds every world-size-th image and the sums are all-reduced (1/N of the set per rank, not
    the whole set N times: on MS1M that is minutes against an hour).

    With these as class weights the first logits already rank each image's own class high (an image's
    cosine to its class mean is large), so the fresh classifier does not send large random gradients into
    the pretrained backbone (Qi et al. 2018, "imprinted weights").
    """
    was_training = model.training
    model.eval()
    sums = torch.zeros(num_classes, model.embedding_dim, device=device)
    counts = torch.zeros(num_classes, device=device)
    part = dataset if world_size() <= 1 else Subset(dataset, range(rank(), len(dataset), world_size()))
    loader = DataLoader(part, batch_size=batch_size, num_workers=num_workers, collate_fn=image_collate(False),
                        pin_memory=device.type == "cuda")
    for images, labels in loader:
        _, features = model(images.to(device, non_blocking=True))
        labels = labels.to(device)
        sums.index_add_(0, labels, nn.functional.normalize(features.float(), dim=1))
        counts.index_add_(0, labels, torch.ones_like(labels, dtype=torch.float))
    model.train(was_training)
    if world_size() > 1:
        torch.distributed.all_reduce(sums)
        torch.distributed.all_reduce(counts)
    if bool((counts == 0).any()):
        raise FacetrainError(f"finetune.classifier=class_means: {int((counts == 0).sum())} classes have no images; "
                             "use finetune.classifier=random")
    return nn.functional.normalize(sums / counts[:, None], dim=1)


def init_classifier(cfg: DictConfig, model: FaceModel, loss: FaceLoss, dataset: Dataset, num_classes: int,
                    device: torch.device, sharded: bool) -> None:
    """`finetune.classifier=class_means`: the loss's class weights start at the class means (bias at 0)."""
    choice = str(finetune_settings(cfg)["classifier"])
    if choice == "random":
        return
    if choice not in CLASSIFIER_INITS:
        raise FacetrainError(f"finetune.classifier={choice!r} must be one of {', '.join(CLASSIFIER_INITS)}")
    weight, bias = class_weight_of(loss)
    means = class_mean_weights(model, dataset, num_classes, device, int(cfg.val.batch_size),
                               int(cfg.data.num_workers))
    shard = getattr(weight, "class_shard", None)
    if sharded and shard is not None:  # this rank's block of classes
        means = means[shard.start:shard.stop]
    elif world_size() > 1:  # every rank summed the same; rank 0's make the replicated weights bit-identical
        torch.distributed.broadcast(means, src=0)
    with torch.no_grad():
        weight.copy_(means.to(weight.dtype))
        if bias is not None:
            bias.zero_()
    log.info("finetune: the %d class weights start at their classes' mean features", num_classes)
