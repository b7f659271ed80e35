"""FaceLoss: the root class of every facetrain loss, holding what the trainer asks of a loss and its defaults."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FaceLoss", "class_matmul"]


class FaceLoss(nn.Module):
    """A loss `forward(features, labels) -> LossOutput` that owns its parameters (class weights, agents, centers).

    The defaults here are "nothing special", so the trainer reads every attribute of every loss without
    probing for it; a loss overrides only what it has.

    Attributes:
        samples_per_identity: K > 0 asks the trainer for identity-balanced P x K batches of K images per
            identity (the in-batch pair losses); 0 takes any batch.
        term_name: the key of the loss's own value in `LossOutput.terms` (how `CombinedLoss` renames it).
        class_weight_names: the parameters holding one row per class that a model-parallel run splits
            over the ranks (the loss then has a `classes` ClassShard and a block path); () when none.
        matmul_dtype: the run's compute dtype (bf16, fp16) for a classifier's matmul, None for fp32; the
            trainer sets it (`ModelAndLoss`), a loss with a classifier passes it to `class_matmul`.
    """

    samples_per_identity: int = 0
    matmul_dtype = None
    term_name: str = ""
    class_weight_names: tuple[str, ...] = ()

    def __init__(self):
        super().__init__()
        self._multipliers: dict[str, tuple[float, float]] = {}

    def set_multipliers(self, name: str, lr_mult: float, wd_mult: float) -> None:
        """Give the own parameter `name` its learning-rate and weight-decay multipliers (both 1 otherwise).

        May be called for an attribute that is a parameter only in some configurations (a scale that is
        learned or fixed): `param_multipliers` lists it only while it is a parameter.

        Args:
            name: the attribute name of the parameter (`weight`, `agents`, `radius`, `scale`).
            lr_mult: factor on the base learning rate.
            wd_mult: factor on the base weight decay.
        """
        self._multipliers[name] = (float(lr_mult), float(wd_mult))

    def param_multipliers(self) -> dict[str, tuple[float, float]]:
        """(lr multiplier, weight-decay multiplier) of this module's own parameters, by name; {} when none.

        Returns:
            {parameter name: (lr_mult, wd_mult)}, for `facetrain.train.build.param_groups`.
        """
        own = dict(self.named_parameters(recurse=False))
        return {name: mult for name, mult in self._multipliers.items() if name in own}

    def scalars(self) -> dict[str, float]:
        """Values worth a TensorBoard curve (a learned scale or radius); {} when none.

        Returns:
            {name: value}, logged by the trainer as `train/<name>`.
        """
        return {}


def class_matmul(features: torch.Tensor, weight: torch.Tensor, dtype: torch.dtype | None,
                 bias: torch.Tensor | None = None) -> torch.Tensor:
    """features @ weight.T (+ bias): in `dtype` under autocast (bf16/fp16 tensor cores; None = as given),
    returned in fp32 so the softmax statistics that follow are fp32."""
    if dtype is None:
        return torch.nn.functional.linear(features, weight, bias)
    with torch.autocast(features.device.type, dtype=dtype):
        out = torch.nn.functional.linear(features, weight, bias)
    return out.float()
