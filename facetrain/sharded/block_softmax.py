"""Cross-entropy over classes split into blocks across the ranks (model parallel) or sampled (Partial FC).

Each rank holds the logits of its block of classes for the whole (gathered) batch. The per-sample maximum
is max-reduced, the sum of exponentials and the target's logit are sum-reduced, so every rank computes
the value one process computes over all the classes, and the gradient each rank's block receives is
that process's gradient for those classes.
"""

from __future__ import annotations

import torch

from facetrain.distributed.collectives import gather_rows, max_over_ranks, sum_over_ranks
from facetrain.distributed.rank import rank, rank_rows, world_size
from facetrain.sharded.shards import ClassShard

__all__ = ["at_target", "block_correct", "block_cross_entropy", "block_forward", "gather_batch", "own_mask",
           "pick_rows", "row_max"]


def gather_batch(features: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The global batch's features (gradient back to each rank's own rows) and labels, in rank order."""
    return gather_rows(features), gather_rows(labels)


def pick_rows(weight: torch.Tensor | None, rows: torch.Tensor | None) -> torch.Tensor | None:
    """The class-weight rows a batch uses (all when `rows` is None); unused rows get no gradient."""
    return weight if weight is None or rows is None else weight[rows]


def _at_least_fp32(x: torch.Tensor) -> torch.Tensor:
    """fp16 / bf16 logits (autocast) in fp32 for the exponentials; fp32 and fp64 as they are."""
    return x.float() if x.dtype in (torch.float16, torch.bfloat16) else x


def row_max(x: torch.Tensor) -> torch.Tensor:
    """Each row's maximum; -inf for a block with no classes (a rank whose classes were all left out)."""
    if x.shape[1] == 0:
        return x.new_full((x.shape[0],), float("-inf"))
    return x.max(dim=1).values


def at_target(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """x[i, target_i], and 0 where the target lies in another block (so the sum over ranks is the target's)."""
    if x.shape[1] == 0:
        return x.new_zeros(x.shape[0])
    picked = x.gather(1, target.clamp_min(0).view(-1, 1)).squeeze(1)
    return torch.where(target >= 0, picked, torch.zeros_like(picked))


def block_cross_entropy(logits: torch.Tensor, target: torch.Tensor, decision: torch.Tensor
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy of the global batch over every rank's block of classes, and this rank's correct count.

    Args:
        logits: [B, c] the global batch's logits for this rank's block (with margins).
        target: [B] each sample's class as a column of the block, -1 where it is in another block.
        decision: [B, c] the margin-free scores for accuracy.

    Returns:
        (loss, correct): the loss of the whole batch (the same on every rank) and how many of this rank's
        own rows (its share of the batch) rank their class first among all the classes used.
    """
    logits = _at_least_fp32(logits)
    shift = max_over_ranks(row_max(logits.detach()))
    exp_sum = sum_over_ranks((logits - shift[:, None]).exp().sum(dim=1))
    target_logit = sum_over_ranks(at_target(logits, target))
    loss = (exp_sum.log() + shift - target_logit).mean()
    return loss, block_correct(decision, target)


@torch.no_grad()
def block_correct(decision: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """How many of this rank's own rows of the gathered batch score their class highest over all blocks."""
    decision = _at_least_fp32(decision)
    best = max_over_ranks(row_max(decision))
    mine = sum_over_ranks(at_target(decision, target))
    own = rank_rows(len(target), rank(), world_size())
    return (mine >= best)[own].sum()


def own_mask(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """[B, c] True at each sample's own class where this block holds it."""
    mask = torch.zeros_like(x, dtype=torch.bool)
    rows = (target >= 0).nonzero().squeeze(1)
    mask[rows, target[rows]] = True
    return mask


def block_forward(shard: ClassShard, logits_of, features: torch.Tensor, labels: torch.Tensor):
    """The block path of a classifier loss: gather the batch, select the classes, call
    `logits_of(features, rows, target) -> (logits, decision)`, then `block_cross_entropy`."""
    features, labels = gather_batch(features, labels)
    rows, target = shard.select(labels)
    logits, decision = logits_of(features, rows, target)
    return block_cross_entropy(logits, target, decision)
