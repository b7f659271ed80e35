"""A-Softmax (SphereFace): target logit ||x|| psi(theta_y), psi(theta) = (-1)^k cos(m theta) - 2k
(Liu et al. 2017; Ge n.d., eqs. 10-11).

Trained with the released code's lambda annealing: the target logit is ||x|| (lambda cos + psi) / (1 + lambda),
lambda = max(lambda_min, base * (1 + gamma * iter)^(-power)).
"""

from __future__ import annotations

import math

import torch

from facetrain.losses.classifier.margin_softmax import MarginSoftmaxLoss

__all__ = ["SphereFaceLoss", "psi", "sphereface_lambda"]


def _chebyshev(cos: torch.Tensor, m: int) -> torch.Tensor:
    """cos(m theta) as the Chebyshev polynomial T_m(cos theta): no acos in the gradient path."""
    prev, cur = torch.ones_like(cos), cos
    if m == 0:
        return prev
    for _ in range(m - 1):
        prev, cur = cur, 2.0 * cos * cur - prev
    return cur


def psi(cos: torch.Tensor, m: int) -> torch.Tensor:
    """psi(theta) = (-1)^k cos(m theta) - 2k for theta in [k pi/m, (k+1) pi/m] (eq. 10), from cos(theta)."""
    with torch.no_grad():
        theta = torch.acos(cos.clamp(-1.0, 1.0))
        k = torch.floor(m * theta / math.pi).clamp(0, m - 1)
    sign = 1.0 - 2.0 * torch.remainder(k, 2)  # (-1)^k
    return sign * _chebyshev(cos, m) - 2.0 * k


def sphereface_lambda(iteration: int, base: float = 1000.0, gamma: float = 0.12, power: float = 1.0,
                      lambda_min: float = 5.0) -> float:
    """The released annealing: max(lambda_min, base * (1 + gamma * iteration)^(-power))."""
    return max(lambda_min, base * (1.0 + gamma * iteration) ** (-power))


class SphereFaceLoss(MarginSoftmaxLoss):
    """A-Softmax with normalized class weights, no bias, and un-normalized features (the scale is ||x||).

    The iteration counter is a buffer advanced on every training `margin_logits` call (once per forward),
    as the Caffe layer does, so the annealing resumes exactly from a checkpoint. The backward pass is
    autograd's (the released Caffe layer normalizes the target's gradient pair instead; see docs/losses.md).

    Args:
        embedding_dim: feature size.
        num_classes: number of training identities.
        m: the integer angular margin (4 in SphereFace).
        base, gamma, power, lambda_min: the lambda schedule (released: 1000, 0.12, 1, 5).
        **kwargs: the lr / weight-decay multipliers of `MarginSoftmaxLoss`.
    """

    term_name = "sphereface"

    def __init__(self, embedding_dim: int, num_classes: int, m: int = 4, base: float = 1000.0,
                 gamma: float = 0.12, power: float = 1.0, lambda_min: float = 5.0, **kwargs):
        for fixed in ("scale", "learn_scale"):  # the scale is ||x||, never a parameter
            kwargs.pop(fixed, None)
        super().__init__(embedding_dim, num_classes, scale=1.0, learn_scale=False, **kwargs)
        self.m = int(m)
        self.schedule = {"base": base, "gamma": gamma, "power": power, "lambda_min": lambda_min}
        self.register_buffer("iteration", torch.zeros((), dtype=torch.long))

    @property
    def lam(self) -> float:
        return sphereface_lambda(int(self.iteration), **self.schedule)

    def logit_scale(self, features: torch.Tensor) -> torch.Tensor:
        """||x|| per sample ([B, 1]): A-Softmax leaves the features un-normalized."""
        return features.norm(dim=1, keepdim=True)

    def target_cosine(self, cos_y: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
        """(lambda cos + psi) / (1 + lambda) at the current iteration's lambda."""
        lam = self.lam
        return (lam * cos_y + psi(cos_y, self.m)) / (1.0 + lam)

    def margin_logits(self, cos: torch.Tensor, features: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The base's logits; a training call is one step of the lambda annealing (once per batch and rank)."""
        if self.training:
            self.iteration += 1
        return super().margin_logits(cos, features, target)

    def scalars(self) -> dict[str, float]:
        return {"lambda": self.lam}
