"""L2 head: eq. 6 gradients by hand, eq. 9 bound against the paper, alpha validation."""

import math

import pytest
import torch

from facetrain.config import check_alpha
from facetrain.errors import FacetrainError
from facetrain.heads import IdentityHead, L2ScaleHead, alpha_lower_bound


def test_alpha_bound_matches_paper():
    # Ranjan et al. 2017, §5.1.1: "close to its lower bound computed using equation 9 for C = 13403 ... p = 0.9"
    assert alpha_lower_bound(13_403, 0.9) == pytest.approx(11.70, abs=0.01)
    assert alpha_lower_bound(10, 0.9) == pytest.approx(math.log(0.9 * 8 / 0.1))


def test_alpha_bound_softmax_probability():
    # eq. 8 at alpha_low gives back p
    c, p = 1000, 0.75
    a = alpha_lower_bound(c, p)
    assert math.exp(a) / (math.exp(a) + c - 2) == pytest.approx(p)


def _eq6_input_gradient(x: torch.Tensor, dl_dz: torch.Tensor, alpha: float) -> torch.Tensor:
    """dl/dx from Ranjan et al. 2017, eq. 6, element by element (one sample)."""
    norm = x.norm()
    dl_dy = dl_dz * alpha
    grad = torch.zeros_like(x)
    for i in range(len(x)):
        for j in range(len(x)):
            dyj_dxi = (norm**2 - x[i] ** 2) / norm**3 if i == j else -x[i] * x[j] / norm**3
            grad[i] += dl_dy[j] * dyj_dxi
    return grad


def test_autograd_matches_eq6():
    torch.manual_seed(0)
    head = L2ScaleHead(alpha=7.5, trainable=True).double()
    x = torch.randn(3, 5, dtype=torch.double, requires_grad=True)
    dl_dz = torch.randn(3, 5, dtype=torch.double)
    (head(x) * dl_dz).sum().backward()
    for n in range(3):
        torch.testing.assert_close(x.grad[n], _eq6_input_gradient(x[n].detach(), dl_dz[n], 7.5))
    y = x.detach() / x.detach().norm(dim=1, keepdim=True)
    torch.testing.assert_close(head.alpha.grad, (dl_dz * y).sum())  # dl/dalpha = sum_j dl/dz_j y_j, over the batch


def test_output_lies_on_sphere_of_radius_alpha():
    out = L2ScaleHead(alpha=20.0)(torch.randn(4, 8) * 100)
    torch.testing.assert_close(out.norm(dim=1), torch.full((4,), 20.0))


def test_alpha_modes():
    fixed = L2ScaleHead(alpha=32)
    assert float(fixed.alpha) == 32 and not any(p.requires_grad for p in fixed.parameters())
    auto = L2ScaleHead(alpha="auto", num_classes=13_403)
    assert float(auto.alpha) == pytest.approx(11.70, abs=0.01) and not list(auto.parameters())
    learned = L2ScaleHead(alpha="trained", num_classes=13_403)
    assert learned.alpha.requires_grad and learned.alpha.item() == pytest.approx(11.70, abs=0.01)
    assert L2ScaleHead(alpha=5, trainable=True).alpha.requires_grad


@pytest.mark.parametrize("bad", [-1, 0, "abc", float("nan"), True])
def test_bad_alpha_is_a_clear_error(bad):
    with pytest.raises(FacetrainError, match="alpha"):
        check_alpha(bad)


def test_auto_needs_classes():
    with pytest.raises(FacetrainError, match="more than 2 classes"):
        L2ScaleHead(alpha="auto", num_classes=2)


def test_identity_head_is_identity():
    x = torch.randn(2, 3)
    assert torch.equal(IdentityHead(num_classes=5)(x), x)
