"""Center, Ring and Range losses against hand computation (Ge n.d., eqs. 2-6; Zheng et al. 2018)."""

import math

import pytest
import torch

from facetrain.errors import FacetrainError
from facetrain.losses import CenterLoss, RangeLoss, RingLoss

X = [[1.0, 2.0], [3.0, 0.0], [0.0, -1.0], [2.0, 2.0]]
Y = [0, 1, 0, 1]


def _sq(a, b):
    return sum((p - q) ** 2 for p, q in zip(a, b, strict=True))


def test_center_value_gradient_and_update():
    loss = CenterLoss(2, 3, alpha=0.5)
    centers = [[0.5, 0.5], [1.0, -1.0], [9.0, 9.0]]
    with torch.no_grad():
        loss.centers.copy_(torch.tensor(centers))
    x = torch.tensor(X, requires_grad=True)
    out = loss(x, torch.tensor(Y))
    assert out.total.item() == pytest.approx(sum(_sq(a, centers[y]) for a, y in zip(X, Y, strict=True)) / (2 * 4))
    out.total.backward()
    expected_grad = [[(a[d] - centers[y][d]) / 4 for d in range(2)] for a, y in zip(X, Y, strict=True)]
    torch.testing.assert_close(x.grad, torch.tensor(expected_grad))
    # the paper's update: c_j -= alpha * sum_{y_i=j} (c_j - x_i) / (1 + n_j); class 2 is absent and stays put
    for j, n_j in ((0, 2), (1, 2)):
        delta = [sum(centers[j][d] - a[d] for a, y in zip(X, Y, strict=True) if y == j) / (1 + n_j) for d in range(2)]
        expected = [centers[j][d] - 0.5 * delta[d] for d in range(2)]
        torch.testing.assert_close(loss.centers[j], torch.tensor(expected))
    torch.testing.assert_close(loss.centers[2], torch.tensor(centers[2]))


def test_center_does_not_move_in_eval_mode():
    loss = CenterLoss(2, 2).eval()
    loss(torch.ones(2, 2), torch.tensor([0, 1]))
    assert torch.equal(loss.centers, torch.zeros(2, 2))


def test_ring_value_gradient_and_auto_init():
    loss = RingLoss(radius_init="auto")
    x = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]], requires_grad=True)  # norms 5, 1, 10
    out = loss(x)
    assert loss.radius.item() == pytest.approx(16 / 3)  # the first batch's mean norm
    r = 16 / 3
    assert out.total.item() == pytest.approx(sum((n - r) ** 2 for n in (5, 1, 10)) / (2 * 3))
    out.total.backward()
    assert loss.radius.grad.item() == pytest.approx(-sum(n - r for n in (5, 1, 10)) / 3, abs=1e-6)
    # d/dx = (||x|| - R) x / ||x|| / m
    torch.testing.assert_close(x.grad[0], torch.tensor([3.0, 4.0]) / 5 * (5 - r) / 3)
    loss(x * 2)
    assert loss.radius.item() == pytest.approx(16 / 3)  # initialised once, and the flag survives a checkpoint
    assert bool(RingLoss(radius_init=7.0).initialized) and RingLoss(radius_init="7").radius.item() == 7.0


@pytest.mark.parametrize("bad", [0, -2, "big"])
def test_ring_bad_radius_is_a_clear_error(bad):
    with pytest.raises(FacetrainError, match="radius_init"):
        RingLoss(radius_init=bad)


def test_range_by_hand():
    x = [[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [10.0, 0.0], [10.0, 2.0]]
    y = [0, 0, 0, 1, 1]
    loss = RangeLoss(k=2, alpha=0.5, beta=0.25, margin=200.0)
    out = loss(torch.tensor(x), torch.tensor(y))
    # class 0: squared distances 1, 9, 10 -> two largest 10, 9 -> 2 / (1/10 + 1/9); class 1: one distance, 4
    intra = 2 / (1 / 10 + 1 / 9) + 1 / (1 / 4)
    mean0, mean1 = [1 / 3, 1.0], [10.0, 1.0]
    inter = max(200.0 - _sq(mean0, mean1), 0.0)
    assert out.terms["intra"].item() == pytest.approx(intra)
    assert out.terms["inter"].item() == pytest.approx(inter)
    assert out.total.item() == pytest.approx(0.5 * intra + 0.25 * inter)
    assert RangeLoss(margin=1.0)(torch.tensor(x), torch.tensor(y)).terms["inter"].item() == 0.0


def test_range_handles_singletons():
    out = RangeLoss()(torch.tensor([[1.0, 0.0], [0.0, 1.0]], requires_grad=True), torch.tensor([0, 1]))
    assert out.terms["intra"].item() == 0.0 and math.isfinite(out.total.item())
    out.total.backward()
