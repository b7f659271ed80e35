"""A classifier's scores computed over its class rows chunk by chunk, in the forward and again in the backward,
so no copy of the whole class-weight block (its normalized rows, their gradient, the normalization's
temporaries) is ever held: the backward holds the weights, their gradient and one chunk's worth.

`chunked_rows(fn, features, params)` is `fn(features, *params)` for any `fn` whose column j depends only on
row j of the params (a classifier: cosines to normalized rows, a linear layer with bias). Autograd would keep
every intermediate of `fn` for the whole block; here only the inputs are kept, and the backward recomputes
each chunk's graph (activation checkpointing by chunks of rows). Each chunk runs the ops the whole block
would; with one chunk (up to `CHUNK_BYTES` of rows) every value, the features' gradient included, is
bitwise the unchunked one. With more chunks the features' gradient is a sum over chunks, and a matmul's
rounding may depend on its shape: float rounding (1e-7 relative in fp32), the same math.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from facetrain.sharded.fused import DeferredRows, holder_of

__all__ = ["CHUNK_BYTES", "DEFAULT_CHUNK_BYTES", "chunked_rows"]

# Bytes of class-weight rows per chunk. A chunk's backward holds about five chunk-sized temporaries at once.
# On a GPU large chunks keep the kernel launches few (64 MiB: 32,768 rows at D = 512) and the caching
# allocator reuses their blocks; on the CPU small ones keep glibc's heap tight (it hands blocks of up to
# 32 MiB back to its own heap, not to the system; measured: 4 MiB chunks add 0.1 x the weights, 64 MiB 0.6 x).
CHUNK_BYTES = {"cpu": 4 << 20}
DEFAULT_CHUNK_BYTES = 64 << 20


def _chunk_rows(params: tuple[torch.Tensor | None, ...]) -> int:
    given = [p for p in params if p is not None]
    row = sum(p[0].numel() * p.element_size() if p.dim() > 1 else p.element_size() for p in given if p.shape[0])
    budget = CHUNK_BYTES.get(given[0].device.type, DEFAULT_CHUNK_BYTES)
    return max(1, budget // max(1, row))


def _parts(params, rows, lo: int, hi: int, whole: bool):
    if whole:
        return list(params)
    pick = slice(lo, hi) if rows is None else rows[lo:hi]
    return [None if p is None else p[pick] for p in params]


class _ChunkedRows(torch.autograd.Function):
    @staticmethod
    def forward(ctx, fn, chunk, rows, features, *params):
        n = params[0].shape[0] if rows is None else len(rows)
        spans = [(lo, min(lo + chunk, n)) for lo in range(0, n, chunk)] or [(0, 0)]
        ctx.fn, ctx.spans = fn, spans
        ctx.whole = len(spans) == 1 and rows is None
        ctx.nones = [p is None for p in params]
        ctx.chunk, ctx.deferred = chunk, next((h for h in map(holder_of, params) if h is not None), None)
        ctx.save_for_backward(features, rows, *[p for p in params if p is not None])
        out = None
        for lo, hi in spans:
            y = fn(features, *_parts(params, rows, lo, hi, ctx.whole))
            if len(spans) == 1:
                return y
            if out is None:
                out = y.new_empty((y.shape[0], n, *y.shape[2:]))
            out[:, lo:hi] = y
        return out

    @staticmethod
    def backward(ctx, grad_out):
        features, rows, *given = ctx.saved_tensors
        it = iter(given)
        params = [None if none else next(it) for none in ctx.nones]
        need_f, need_p = ctx.needs_input_grad[3], ctx.needs_input_grad[4:]
        if ctx.deferred is not None and any(need_p):
            return None, None, None, _deferred_backward(ctx, ctx.deferred, grad_out, features, rows, params), \
                *[None] * len(params)
        d_features, d_params = None, [None] * len(params)
        for lo, hi, g_f, grads in _chunk_grads(ctx, grad_out, features, rows, params):
            if need_f:
                d_features = g_f if d_features is None else d_features if g_f is None else d_features.add_(g_f)
            for i, p in enumerate(params):
                if p is None or not need_p[i]:
                    continue
                g = grads[i]
                if ctx.whole:
                    d_params[i] = g if g is not None else torch.zeros_like(p)
                    continue
                if d_params[i] is None:
                    d_params[i] = torch.zeros_like(p) if rows is not None else torch.empty_like(p)
                if g is None:
                    g = p.new_zeros((hi - lo, *p.shape[1:]))
                if rows is None:
                    d_params[i][lo:hi] = g
                else:  # the sampled rows' gradients into a zero matrix, as indexing's backward does
                    d_params[i].index_put_((rows[lo:hi],), g, accumulate=True)
        return None, None, None, d_features, *d_params


def _chunk_grads(ctx, grad_out, features, rows, params):
    """(lo, hi, the features' gradient, each parameter's gradient or None) for each chunk of rows, its graph
    recomputed from the saved inputs."""
    need_f, need_p = ctx.needs_input_grad[3], ctx.needs_input_grad[4:]
    for lo, hi in ctx.spans:
        with torch.enable_grad():
            f = features.detach().requires_grad_(need_f)
            parts = [None if p is None else p.detach().requires_grad_(need)
                     for p, need in zip(_parts(params, rows, lo, hi, ctx.whole), need_p, strict=True)]
            y = ctx.fn(f, *parts)
            wanted = [t for t, need in zip([f, *parts], [need_f, *need_p], strict=True) if t is not None and need]
            grads = iter(torch.autograd.grad(y, wanted, grad_out if len(ctx.spans) == 1 else grad_out[:, lo:hi],
                                             allow_unused=True) if y.requires_grad else [None] * len(wanted))
        g_f = next(grads) if need_f else None
        yield lo, hi, g_f, [next(grads) if p is not None and need else None
                            for p, need in zip(params, need_p, strict=True)]


def _deferred_backward(ctx, holder: DeferredRows, grad_out, features, rows, params) -> torch.Tensor | None:
    """The backward with the parameters' gradient deferred (`facetrain.sharded.fused`): each chunk's is
    computed for its norm and dropped; the features' gradient is the one the plain backward gives."""
    need_f, need_p = ctx.needs_input_grad[3], ctx.needs_input_grad[4:]
    d_features, norms = None, [[] for _ in params]
    for _, _, g_f, grads in _chunk_grads(ctx, grad_out, features, rows, params):
        if need_f:
            d_features = g_f if d_features is None else d_features if g_f is None else d_features.add_(g_f)
        for i, g in enumerate(grads):
            if g is not None:
                norms[i].append(torch.linalg.vector_norm(g))
    totals = {id(p): torch.linalg.vector_norm(torch.stack(norms[i])) if norms[i] else p.new_zeros(())
              for i, (p, need) in enumerate(zip(params, need_p, strict=True)) if p is not None and need}
    holder.record(ctx.fn, ctx.chunk, rows, features.detach(), grad_out, list(params), list(need_p), totals)
    return d_features


def chunked_rows(fn: Callable[..., torch.Tensor], features: torch.Tensor, params: tuple[torch.Tensor | None, ...],
                 rows: torch.Tensor | None = None, chunk_rows: int | None = None) -> torch.Tensor:
    """fn(features, *[p[rows] for p in params]) ([B, c, ...], class dim 1), computed `chunk_rows` classes at a
    time (default: `CHUNK_BYTES` of rows for the device) in the forward and the backward, holding no whole-block intermediates.

    Args:
        fn: row-local scores, e.g. a loss's `class_similarities`; params may include None (no bias).
        features: [B, D] features.
        params: row-aligned tensors ([C, ...], row = class), e.g. (weight,) or (weight, bias).
        rows: the rows used (class sampling), or None for all; unused rows get a zero gradient.
        chunk_rows: classes per chunk (tests use a few).
    """
    chunk = int(chunk_rows) if chunk_rows else _chunk_rows(params)
    return _ChunkedRows.apply(fn, chunk, rows, features, *params)
