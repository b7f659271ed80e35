"""Count the host syncs a piece of code would make on a GPU, on the CPU (helpers, no tests).

A GPU step runs ahead of the host until the host needs a value from the device or waits for a copy. On a
CPU every such point is free, so it is counted by wrapping the Python entry points that make one:

- reads of a value: `Tensor.item`, `tolist`, `numpy`, `cpu`, `__bool__` (an `if` on a tensor), `__int__`,
  `__float__`, `__index__`;
- outputs whose size depends on the data (the device must tell the host how many): `Tensor.nonzero` /
  `torch.nonzero`, `torch.unique` / `Tensor.unique` / `unique_consecutive`, `torch.masked_select`, and
  indexing (`x[mask]`, `x[mask] = v`) with a boolean tensor;
- blocking copies: `Tensor.to(<device>, ...)` / `Tensor.cuda()` called from facetrain's own code without
  `non_blocking=True` (PyTorch synchronizes the stream after such a copy), and `torch.tensor` /
  `torch.as_tensor` given a `device` there (host data copied the same way). Torch's own `.to(device)` calls
  (clip_grad_norm_'s per-device norms) are same-device no-ops and are not counted.

A call made inside a counted call is not counted again (`Tensor.unique` calls `torch.unique`).
Collectives (all_reduce, all_gather) are not host reads and are not counted.
"""

from __future__ import annotations

import contextlib
import sys
from collections import Counter

import torch

__all__ = ["count_host_syncs"]

_READS = ("item", "tolist", "numpy", "cpu", "__bool__", "__int__", "__float__", "__index__", "nonzero", "unique",
          "unique_consecutive")
_TORCH = ("nonzero", "unique", "unique_consecutive", "masked_select")


def _names_a_device(args, kwargs) -> bool:
    if "device" in kwargs:
        return True
    first = args[0] if args else None
    return isinstance(first, (torch.device, str, int)) or isinstance(first, torch.Tensor)


def _from_facetrain(depth: int = 2) -> bool:
    return sys._getframe(depth).f_globals.get("__name__", "").startswith("facetrain")


def _boolean_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts)


@contextlib.contextmanager
def count_host_syncs():
    """Yield a Counter of the host syncs made inside the block, by entry point."""
    counts: Counter = Counter()
    depth = [0]
    originals: list[tuple[object, str, object]] = []

    def wrap(owner, name, should_count=lambda args, kwargs: True):
        original = getattr(owner, name)
        originals.append((owner, name, original))

        def counted(*args, **kwargs):
            if depth[0] == 0 and should_count(args, kwargs):
                counts[f"{getattr(owner, '__name__', owner)}.{name}"] += 1
            depth[0] += 1
            try:
                return original(*args, **kwargs)
            finally:
                depth[0] -= 1

        setattr(owner, name, counted)

    for name in _READS:
        wrap(torch.Tensor, name)
    for name in _TORCH:
        wrap(torch, name)
    blocking = lambda args, kwargs: (_names_a_device(args[1:], kwargs) and not kwargs.get("non_blocking")  # noqa: E731
                                     and _from_facetrain(3))
    wrap(torch.Tensor, "to", blocking)
    wrap(torch.Tensor, "cuda", lambda args, kwargs: not kwargs.get("non_blocking") and _from_facetrain(3))
    for name in ("tensor", "as_tensor"):
        wrap(torch, name, lambda args, kwargs: "device" in kwargs and _from_facetrain(3))
    wrap(torch.Tensor, "__getitem__", lambda args, kwargs: _boolean_index(args[1]))
    wrap(torch.Tensor, "__setitem__", lambda args, kwargs: _boolean_index(args[1]))
    try:
        yield counts
    finally:
        for owner, name, original in reversed(originals):
            setattr(owner, name, original)
