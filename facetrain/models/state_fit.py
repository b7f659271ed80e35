"""Load a state dict into a module only when every key and shape fits, else name the first mismatch in one line."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from facetrain.errors import FacetrainError

__all__ = ["fit_state_dict"]

_OPTIONAL = ("num_batches_tracked",)  # BatchNorm's step counter: absent from some files, meaningless at eval


def _first_mismatch(expected: Mapping[str, torch.Tensor], given: Mapping[str, torch.Tensor],
                    shown: Mapping[str, str]) -> str | None:
    for key, value in given.items():  # in the file's order: its first wrong entry is the one named
        name = shown.get(key, key)
        if key not in expected:
            return f"key {name!r} has no place in the model"
        if tuple(value.shape) != tuple(expected[key].shape):
            return f"{name!r} has shape {list(value.shape)}, the model needs {list(expected[key].shape)}"
    for key in expected:
        if key not in given and not key.endswith(_OPTIONAL):
            return f"key {shown.get(key, key)!r} is missing"
    return None


def fit_state_dict(module: nn.Module, state: Mapping[str, torch.Tensor], source: str, fix: str,
                   shown: Mapping[str, str] | None = None) -> None:
    """`module.load_state_dict(state)` after checking keys and shapes.

    Args:
        module: the module to load into.
        state: its weights, under the module's own key names.
        source: what the weights came from (a file), for the message.
        fix: what to do about a mismatch, for the message.
        shown: module key -> the key as the file spells it (renamed files name their own keys).
    """
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise FacetrainError(f"{source} does not hold a state dict of tensors; {fix}")
    problem = _first_mismatch(module.state_dict(), state, shown or {})
    if problem:
        raise FacetrainError(f"{source} does not fit the model: {problem}; {fix}")
    full = dict(state)
    for key, value in module.state_dict().items():
        full.setdefault(key, value)  # only the optional counters can be absent here
    module.load_state_dict(full)
