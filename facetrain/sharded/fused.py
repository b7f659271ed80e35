"""The class weights' SGD step fused into a second pass over chunks of rows (`fused_class_update=true`), so
a classifier's whole gradient (as large as its weights: C_shard x D) is never held.

The backward of `chunked_rows` computes each chunk's gradient only for its norm (clipping and the finite
check need the global norm before any weight moves) and keeps what recomputes it: the features and the
gradient of its output ([B, c], the logits' size). Once the step knows the clip coefficient and that every
gradient is finite, `step_deferred` recomputes each chunk's gradient and applies torch SGD's update to
that chunk in place: g = coef x grad + weight_decay x w; buf = momentum x buf + (1 - dampening) x g (buf = g
at the first step); w -= lr x (g + momentum x buf if nesterov else buf). Rows a class-sampled batch left
out get g = weight_decay x w, as torch's SGD gives them with the zero gradient the autograd path holds.
The momentum stays in `optimizer.state[w]["momentum_buffer"]` and the rate comes from the param group, so
checkpoints, schedules and resumes see an ordinary SGD. The price: one more pass of the classifier's
forward and weight-gradient matmuls per step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from facetrain.errors import FacetrainError

__all__ = ["DeferredRows", "deferred_norm", "discard_deferred", "fuse_class_updates", "holder_of", "set_clip",
           "step_deferred"]


@dataclass
class _Pending:
    """One `chunked_rows` call's backward: what recomputes its parameters' gradient chunk by chunk."""

    fn: Callable[..., torch.Tensor]
    chunk: int  # rows per chunk
    rows: torch.Tensor | None  # the sampled rows (sorted, as ClassShard.select lists them), None = all
    features: torch.Tensor
    grad_out: torch.Tensor  # [B, rows used, ...]
    params: list[torch.Tensor | None]  # fn's row-aligned inputs, as given
    needs: list[bool]  # which of them train
    norms: dict[int, torch.Tensor] = field(default_factory=dict)  # id(param) -> its gradient's 2-norm
    coef: torch.Tensor | None = None  # the clip coefficient (None: not clipped)


class DeferredRows:
    """Marks a loss's class-weight parameters (`param.deferred_rows`, one object per loss) whose gradient
    `chunked_rows` defers to `step_deferred`; holds the step's pending record between them."""

    def __init__(self):
        self.pending: _Pending | None = None

    def record(self, fn: Callable[..., torch.Tensor], chunk: int, rows: torch.Tensor | None, features: torch.Tensor,
               grad_out: torch.Tensor, params: list[torch.Tensor | None], needs: list[bool],
               norms: dict[int, torch.Tensor]) -> None:
        """Keep one backward's inputs (`_Pending`'s fields) for `step_deferred`."""
        if self.pending is not None:
            raise RuntimeError("fused_class_update: the class weights went through chunked_rows twice in one "
                               "backward; their deferred gradients would not add up")
        self.pending = _Pending(fn, chunk, rows, features, grad_out, params, needs, norms)


def holder_of(param: torch.Tensor | None) -> DeferredRows | None:
    return None if param is None else getattr(param, "deferred_rows", None)


def deferred_norm(param: torch.Tensor) -> torch.Tensor | None:
    """The 2-norm of `param`'s deferred gradient in this step, or None when it has none."""
    holder = holder_of(param)
    if holder is None or holder.pending is None:
        return None
    return holder.pending.norms.get(id(param))


def _holders(params) -> list[DeferredRows]:
    seen: dict[int, DeferredRows] = {}
    for p in params:
        holder = holder_of(p)
        if holder is not None and holder.pending is not None:
            seen.setdefault(id(holder), holder)
    return list(seen.values())


def set_clip(params, max_norm: float, norm: torch.Tensor) -> None:
    """Clip the deferred gradients of `params` by clip_grads_with_norm_'s factor, min(1, max_norm / (norm +
    1e-6)), applied when they are recomputed (nothing to compute when none is deferred)."""
    holders = _holders(params)
    if holders:
        coef = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
        for holder in holders:
            holder.pending.coef = coef


def discard_deferred(params) -> None:
    """Forget the deferred gradients (a skipped step, or the start of the next backward)."""
    for p in params:
        holder = holder_of(p)
        if holder is not None:
            holder.pending = None


def _scalar(value) -> float:
    return float(value.item()) if isinstance(value, torch.Tensor) else float(value)


def _sgd_rows(param: torch.Tensor, lo: int, grad: torch.Tensor, group: dict, state: dict, first: bool) -> None:
    """torch SGD's update (`_single_tensor_sgd`, the ops in its order) on rows [lo, lo + len(grad)) of `param`."""
    hi = lo + grad.shape[0]
    w = param[lo:hi]
    wd, momentum = group["weight_decay"], group["momentum"]
    if wd != 0:
        grad = grad.add_(w, alpha=_scalar(wd))  # grad is this chunk's own temporary
    if momentum != 0:
        buf = state["momentum_buffer"][lo:hi]
        if first:
            buf.copy_(grad)
        else:
            buf.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
        grad = grad.add(buf, alpha=momentum) if group["nesterov"] else buf
    w.add_(grad, alpha=-_scalar(group["lr"]))


def _row_bounds(rows: torch.Tensor | None, spans: list[tuple[int, int]]) -> list[int] | None:
    """For sorted `rows`, where each span's rows start among them (one host read); None for all rows."""
    if rows is None:
        return None
    edges = torch.tensor([lo for lo, _ in spans] + [spans[-1][1]], device=rows.device, dtype=rows.dtype)
    ordered = (rows[1:] > rows[:-1]).all() if len(rows) > 1 else torch.ones((), dtype=torch.bool, device=rows.device)
    *bounds, ok = torch.cat([torch.searchsorted(rows, edges), ordered.long().view(1)]).tolist()
    if not ok:
        raise RuntimeError("fused_class_update: chunked_rows' rows must be sorted and distinct")
    return bounds


def _step_pending(pending: _Pending, groups: dict[int, dict], states) -> None:
    """Recompute the gradient of `pending`'s parameters chunk by chunk of their rows and step each chunk."""
    trained = [p for p, need in zip(pending.params, pending.needs, strict=True) if p is not None and need]
    n = trained[0].shape[0]
    spans = [(lo, min(lo + pending.chunk, n)) for lo in range(0, n, pending.chunk)] or [(0, 0)]
    bounds = _row_bounds(pending.rows, spans)
    firsts = []
    for p in trained:  # torch's SGD keeps state only with momentum
        first = groups[id(p)]["momentum"] != 0 and states[p].get("momentum_buffer") is None
        if first:
            states[p]["momentum_buffer"] = torch.empty_like(p, memory_format=torch.preserve_format)
        firsts.append(first)
    for k, (lo, hi) in enumerate(spans):
        if bounds is None:
            pick = cols = slice(lo, hi)
        else:
            pick = cols = slice(bounds[k], bounds[k + 1])
            pick = pending.rows[pick]
        with torch.enable_grad():
            parts = [None if p is None else p[pick].detach().requires_grad_(need)
                     for p, need in zip(pending.params, pending.needs, strict=True)]
            wanted = [t for t in parts if t is not None and t.requires_grad]
            y = pending.fn(pending.features, *parts)
            grads = (torch.autograd.grad(y, wanted, pending.grad_out[:, cols], allow_unused=True)
                     if y.requires_grad and y.numel() else [None] * len(wanted))
        with torch.no_grad():
            for p, g, first in zip(trained, grads, firsts, strict=True):
                if bounds is not None or g is None:  # the sampled rows' gradients in a zero chunk, as autograd's
                    full = p.new_zeros((hi - lo, *p.shape[1:]))
                    if g is not None:
                        full.index_put_((pick - lo,), g, accumulate=True)
                    g = full
                if pending.coef is not None:
                    g.mul_(pending.coef)
                group = groups[id(p)]
                _sgd_rows(p, lo, g, group, states[p] if group["momentum"] != 0 else {}, first)


def step_deferred(optimizer: torch.optim.Optimizer) -> None:
    """Apply the SGD step of every deferred class-weight gradient among the optimizer's parameters (after the
    clip coefficient is set and the gradients found finite), then forget them."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    groups = {id(p): group for group in optimizer.param_groups for p in group["params"]}
    for holder in _holders(params):
        pending, holder.pending = holder.pending, None
        _step_pending(pending, groups, optimizer.state)


def _refusal(optimizer: torch.optim.Optimizer, precision: str) -> str | None:
    if precision == "fp16":
        return ("fused_class_update=true does not support precision=fp16 (its GradScaler would not see the class "
                "weights' gradient); use precision=bf16 or fp32, or drop fused_class_update")
    if type(optimizer) is not torch.optim.SGD:
        return (f"fused_class_update=true applies torch SGD's update, not {type(optimizer).__name__}'s; use optim=sgd "
                "or drop fused_class_update")
    for group in optimizer.param_groups:
        if group["maximize"] or group["differentiable"] or isinstance(group["weight_decay"], torch.Tensor):
            return ("fused_class_update=true supports SGD without maximize, differentiable or a tensor weight_decay; "
                    "drop those optimizer settings or fused_class_update")
    return None


def fuse_class_updates(loss: nn.Module, optimizer: torch.optim.Optimizer, precision: str, world_size: int) -> int:
    """Mark the class weights of `loss` whose gradient `chunked_rows` may defer: sharded ones (left out of
    DistributedDataParallel) or, on one process, any. Returns how many parameters were marked."""
    refusal = _refusal(optimizer, precision)
    if refusal:
        raise FacetrainError(refusal)
    marked = 0
    for module in loss.modules():
        names = getattr(module, "class_weight_names", ())
        if not names or not hasattr(module, "classes"):
            continue
        holder = DeferredRows()
        for name in names:
            parent_name, _, leaf = name.rpartition(".")
            param = getattr(module.get_submodule(parent_name) if parent_name else module, leaf, None)
            if isinstance(param, nn.Parameter) and (world_size == 1 or hasattr(param, "class_shard")):
                param.deferred_rows = holder
                marked += 1
    if world_size > 1 and not marked:
        raise FacetrainError("fused_class_update=true needs shard_classifier=true under torchrun (DDP averages a "
                             "replicated classifier's gradient); add shard_classifier=true or drop fused_class_update")
    return marked
