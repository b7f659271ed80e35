"""The trainer's side of a sharded classifier: split the class weights, clip by the global norm, and keep
checkpoints whole (the full class-weight matrix and its optimizer state), so any world size resumes them.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from facetrain.distributed.collectives import pad_gather_rows
from facetrain.errors import FacetrainError
from facetrain.losses import FaceLoss
from facetrain.sharded.shards import ClassShard, shard_bounds

__all__ = ["clip_global_norm", "gather_checkpoint", "global_grad_norm", "localize_checkpoint", "setup_class_shards",
           "sharded_parameter_names"]


def setup_class_shards(loss: FaceLoss, seed: int, shard: bool, rank: int, world_size: int) -> list[ClassShard]:
    """Give every class-weight loss's ClassShard the run's seed and, when `shard` under torchrun, keep only
    this rank's block of its class weights. Returns the shards (the trainer tells them the iteration)."""
    shards = []
    for module in loss.modules():
        classes = getattr(module, "classes", None)
        if isinstance(module, FaceLoss) and isinstance(classes, ClassShard):
            classes.seed = int(seed)
            if shard and world_size > 1:
                classes.place(module, module.class_weight_names, rank, world_size)
            shards.append(classes)
    if shard and world_size > 1 and not shards:
        raise FacetrainError(f"shard_classifier=true but {type(loss).__name__} has no class weights to shard "
                             "(softmax, l2softmax, normface, cosface, arcface, sphereface, c_contrastive and "
                             "c_triplet have); drop shard_classifier=true")
    return shards


def _shard_of(param: torch.Tensor) -> ClassShard | None:
    return getattr(param, "class_shard", None)


def sharded_parameter_names(module: nn.Module) -> list[str]:
    """The names of `module`'s parameters that hold one rank's rows of a class-weight matrix."""
    return [name for name, param in module.named_parameters() if _shard_of(param) is not None]


def global_grad_norm(parameters: list[torch.Tensor]) -> torch.Tensor:
    """The 2-norm of the gradients of `parameters` as one process would find it: the squares of the sharded
    gradients are summed over the ranks (a collective when there are any), the replicated ones added once."""
    with_grad = [p for p in parameters if p.grad is not None]
    sharded = [p.grad for p in with_grad if _shard_of(p) is not None]
    replicated = [p.grad for p in with_grad if _shard_of(p) is None]
    device = with_grad[0].device if with_grad else (parameters[0].device if parameters else None)
    total = torch.zeros((), device=device, dtype=torch.float32)
    if sharded:
        total = torch.nn.utils.get_total_norm(sharded).float().pow(2)
        dist.all_reduce(total)
    if replicated:
        total = total + torch.nn.utils.get_total_norm(replicated).float().pow(2)
    return total.sqrt()


def clip_global_norm(parameters: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """clip_grad_norm_ over parameters of which some may be sharded: every rank finds the norm
    (`global_grad_norm`) and clips by the factor one process would. Returns the norm before clipping.
    A non-finite norm makes the gradients non-finite too; the trainer then skips the step."""
    norm = global_grad_norm(parameters)
    if max_norm < math.inf:  # scales by min(1, max_norm / norm) on the device: no host read
        torch.nn.utils.clip_grads_with_norm_([p for p in parameters if p.grad is not None], max_norm, norm)
    return norm


def _full(tensor: torch.Tensor, shard: ClassShard) -> torch.Tensor:
    counts = [b - a for a, b in (shard_bounds(shard.num_classes, r, shard.world_size)
                                 for r in range(shard.world_size))]
    return pad_gather_rows(tensor.detach(), counts).cpu()


def _own(tensor: torch.Tensor, shard: ClassShard) -> torch.Tensor:
    return tensor[shard.start:shard.stop].clone() if tensor.shape[0] == shard.num_classes else tensor


def _sharded_entries(saved: dict, parts: dict[str, nn.Module], optimizer: torch.optim.Optimizer):
    """(container, key, shard) for every checkpoint entry that holds rows of a sharded matrix: the weights
    and each optimizer state tensor shaped like them (momentum, Adam's moments)."""
    for name, module in parts.items():
        for key, param in module.named_parameters():
            if _shard_of(param) is not None:
                yield saved["model"][name], key, _shard_of(param)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    states = saved["optimizer"]["state"]
    for index, param in enumerate(params):
        if _shard_of(param) is not None and index in states:
            states[index] = dict(states[index])  # a copy: the optimizer's own state dict must stay as it is
            for key in sorted(states[index]):
                value = states[index][key]
                if isinstance(value, torch.Tensor) and value.dim() == param.dim() and value.shape[1:] == param.shape[1:]:
                    yield states[index], key, _shard_of(param)


def gather_checkpoint(saved: dict, parts: dict[str, nn.Module], optimizer: torch.optim.Optimizer) -> dict:
    """Replace each rank's rows in a captured checkpoint by the full matrices (weights and momentum).

    A collective: every rank calls it, in the same order; rank 0 then writes the result.
    """
    for container, key, shard in list(_sharded_entries(saved, parts, optimizer)):
        container[key] = _full(container[key], shard)
    return saved


def localize_checkpoint(saved: dict, parts: dict[str, nn.Module], optimizer: torch.optim.Optimizer) -> dict:
    """The reverse: cut this rank's rows out of a checkpoint's full class-weight matrices and their
    optimizer state, whatever world size saved it."""
    for container, key, shard in list(_sharded_entries(saved, parts, optimizer)):
        if key in container:
            container[key] = _own(container[key], shard)
    return saved
