"""The trainer's side of a sharded classifier: split the class weights, clip by the global norm, and keep
checkpoints whole (the full class-weight matrix and its optimizer state), so any world size resumes them.

A save sends every rank's rows to rank 0 chunk by chunk, and rank 0 writes one ordinary checkpoint; a
resume maps that file (`torch.load(mmap=True)`) and each rank copies only its own rows out of it.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
from torch import nn

from facetrain.distributed.collectives import rows_to_main
from facetrain.errors import FacetrainError
from facetrain.losses import FaceLoss
from facetrain.sharded.fused import deferred_norm, set_clip
from facetrain.sharded.pages import copy_rows
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
    gradients are summed over the ranks (a collective whenever a parameter is sharded, on every rank alike),
    the replicated ones added once.
    A gradient deferred by `fused_class_update` counts by its norm (`facetrain.sharded.fused`)."""
    grads = [(p, p.grad if p.grad is not None else deferred_norm(p)) for p in parameters]
    with_grad = [(p, g) for p, g in grads if g is not None]
    sharded = [g for p, g in with_grad if _shard_of(p) is not None]
    replicated = [g for p, g in with_grad if _shard_of(p) is None]
    device = with_grad[0][1].device if with_grad else (parameters[0].device if parameters else None)
    total = torch.zeros((), device=device, dtype=torch.float32)
    if sharded:
        total = torch.nn.utils.get_total_norm(sharded).float().pow(2)
    if any(_shard_of(p) is not None for p in parameters):  # every rank, with or without a gradient of its own
        dist.all_reduce(total)
    if replicated:
        total = total + torch.nn.utils.get_total_norm(replicated).float().pow(2)
    return total.sqrt()


def clip_global_norm(parameters: list[torch.Tensor], max_norm: float) -> torch.Tensor:
    """clip_grad_norm_ over parameters of which some may be sharded: every rank finds the norm
    (`global_grad_norm`) and clips by the factor one process would (a deferred gradient: when it is
    recomputed). Returns the norm before clipping.
    A non-finite norm makes the gradients non-finite too; the trainer then skips the step."""
    norm = global_grad_norm(parameters)
    if max_norm < math.inf:  # scales by min(1, max_norm / norm) on the device: no host read
        torch.nn.utils.clip_grads_with_norm_([p for p in parameters if p.grad is not None], max_norm, norm)
        set_clip(parameters, max_norm, norm)  # fused_class_update: the same factor, applied when recomputed
    return norm


CHUNK_BYTES = 64 << 20  # what one send of a save moves: the most any rank holds beyond its shard


def _full(tensor: torch.Tensor, shard: ClassShard) -> torch.Tensor | None:
    bounds = [shard_bounds(shard.num_classes, r, shard.world_size) for r in range(shard.world_size)]
    return rows_to_main(tensor, bounds, CHUNK_BYTES)


def _own(tensor: torch.Tensor, shard: ClassShard, into: torch.Tensor | None) -> torch.Tensor:
    """This rank's rows of a full matrix, copied (without keeping a mapped file's pages) into `into` when
    given, else into a new tensor."""
    if tensor.shape[0] != shard.num_classes:
        return tensor
    rows = tensor[shard.start:shard.stop]
    return copy_rows(torch.empty_like(rows) if into is None else into, rows)


def _fits(module: nn.Module, saved: dict, key: str, param: torch.Tensor, shard: ClassShard) -> bool:
    """True when `module.load_state_dict(saved)` will load every entry (the same keys and shapes, the sharded
    `key` as all C rows), so its sharded rows may be copied into `param` now."""
    own = module.state_dict()
    if set(own) != set(saved) or saved[key].shape != (shard.num_classes, *param.shape[1:]):
        return False
    return saved[key].dtype == param.dtype and all(
        k == key or not isinstance(v, torch.Tensor) or getattr(saved[k], "shape", None) == v.shape
        for k, v in own.items())


def _sharded_entries(saved: dict, parts: dict[str, nn.Module], optimizer: torch.optim.Optimizer):
    """(container, key, shard, param) for every checkpoint entry that holds rows of a sharded matrix: the
    weights (param: the parameter, when `load_state_dict` of its module will load every entry) and each
    optimizer state tensor shaped like them (momentum, Adam's moments; param None: the optimizer keeps the
    tensor it is given)."""
    for name, module in parts.items():
        for key, param in module.named_parameters():
            if _shard_of(param) is not None:
                container = saved["model"][name]
                fits = key in container and _fits(module, container, key, param, _shard_of(param))
                yield container, key, _shard_of(param), param if fits else None
    params = [p for group in optimizer.param_groups for p in group["params"]]
    states = saved["optimizer"]["state"]
    for index, param in enumerate(params):
        if _shard_of(param) is not None and index in states:
            states[index] = dict(states[index])  # a copy: the optimizer's own state dict must stay as it is
            for key in sorted(states[index]):
                value = states[index][key]
                if isinstance(value, torch.Tensor) and value.dim() == param.dim() and value.shape[1:] == param.shape[1:]:
                    yield states[index], key, _shard_of(param), None


def gather_checkpoint(saved: dict, parts: dict[str, nn.Module], optimizer: torch.optim.Optimizer) -> dict:
    """On rank 0, replace each rank's rows in a captured checkpoint by the full matrices (weights and
    momentum), assembled in host memory chunk by chunk (`CHUNK_BYTES`); the other ranks send their rows
    and get `saved` back unchanged (not a checkpoint: only rank 0 writes).

    A collective: every rank calls it, in the same order. Rank 0 holds one full copy of the sharded state
    on the host while it writes; no other rank, and no GPU, holds more than its shard plus one chunk.
    """
    for container, key, shard, _ in list(_sharded_entries(saved, parts, optimizer)):
        full = _full(container[key], shard)
        if full is not None:
            container[key] = full
    return saved


def localize_checkpoint(saved: dict, parts: dict[str, nn.Module], optimizer: torch.optim.Optimizer) -> dict:
    """The reverse: cut this rank's rows out of a checkpoint's full class-weight matrices and their
    optimizer state, whatever world size saved it. On a checkpoint loaded with `mmap=True` only those rows
    are read from the file, block by block, each block's pages released once copied (`copy_rows`), so the
    rank never holds its shard both copied and mapped. The weights' rows go straight into the parameters
    when their module will load whole (`load_state_dict` then copies each onto itself: nothing); the
    optimizer state's rows into new tensors (the optimizer keeps what it is given)."""
    for container, key, shard, param in list(_sharded_entries(saved, parts, optimizer)):
        if key in container:
            container[key] = _own(container[key], shard, None if param is None else param.detach())
    return saved
