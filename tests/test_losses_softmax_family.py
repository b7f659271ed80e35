"""Softmax-family losses against hand computation: softmax (bias on/off), NormFace (eq. 4, eq. 6, prop. 2),
CosFace, ArcFace and A-Softmax (Ge n.d., eq. 10; the released lambda schedule)."""

import math

import pytest
import torch
import torch.nn.functional as F

from facetrain.errors import FacetrainError
from facetrain.losses import (
    ArcFaceLoss,
    CosFaceLoss,
    NormFaceLoss,
    SoftmaxLoss,
    SphereFaceLoss,
    normface_loss_bound,
    psi,
    sphereface_lambda,
)


def _xent(logits_row: list[float], target: int) -> float:
    """-log softmax by hand, for one sample."""
    return -logits_row[target] + math.log(sum(math.exp(v) for v in logits_row))


def _unit(v):
    n = math.sqrt(sum(a * a for a in v))
    return [a / n for a in v]


def _dot(a, b):
    return sum(x * y for x, y in zip(a, b, strict=True))


FEATS = [[3.0, 4.0], [-1.0, 2.0], [0.5, -2.0]]
WEIGHTS = [[1.0, 0.0], [0.0, 2.0], [-1.0, -1.0]]
LABELS = [0, 1, 2]


def _with_weights(loss, weights=WEIGHTS):
    with torch.no_grad():
        loss.weight.copy_(torch.tensor(weights))
    return loss


def _cosines():
    return [[_dot(_unit(f), _unit(w)) for w in WEIGHTS] for f in FEATS]


@pytest.mark.parametrize("bias", [True, False])
def test_softmax_bias_on_and_off(bias):
    loss = SoftmaxLoss(2, 3, bias=bias)
    assert (loss.classifier.bias is not None) == bias
    with torch.no_grad():
        loss.classifier.weight.copy_(torch.tensor(WEIGHTS))
        if bias:
            loss.classifier.bias.copy_(torch.tensor([0.5, -0.25, 1.0]))
    b = [0.5, -0.25, 1.0] if bias else [0.0, 0.0, 0.0]
    expected = sum(_xent([_dot(f, w) + bj for w, bj in zip(WEIGHTS, b, strict=True)], y)
                   for f, y in zip(FEATS, LABELS, strict=True)) / 3
    out = loss(torch.tensor(FEATS), torch.tensor(LABELS))
    assert out.total.item() == pytest.approx(expected, rel=1e-6)


def test_normface_value_is_eq6():
    loss = _with_weights(NormFaceLoss(2, 3, scale=7.0, learn_scale=False))
    expected = sum(_xent([7.0 * c for c in row], y) for row, y in zip(_cosines(), LABELS, strict=True)) / 3
    assert loss(torch.tensor(FEATS), torch.tensor(LABELS)).total.item() == pytest.approx(expected, rel=1e-6)


def test_normface_ablations():
    f = torch.tensor(FEATS)
    feat_only = _with_weights(NormFaceLoss(2, 3, normalize="features", scale=3.0, learn_scale=False))
    expected = sum(_xent([3.0 * _dot(_unit(x), w) for w in WEIGHTS], y) for x, y in zip(FEATS, LABELS, strict=True)) / 3
    assert feat_only(f, torch.tensor(LABELS)).total.item() == pytest.approx(expected, rel=1e-6)
    weight_only = _with_weights(NormFaceLoss(2, 3, normalize="weights"))
    expected = sum(_xent([_dot(x, _unit(w)) for w in WEIGHTS], y) for x, y in zip(FEATS, LABELS, strict=True)) / 3
    assert weight_only(f, torch.tensor(LABELS)).total.item() == pytest.approx(expected, rel=1e-6)
    assert not list(weight_only.parameters())[1:] and weight_only.scalars() == {}  # no scale in weight-only
    with pytest.raises(FacetrainError, match="normalize"):
        NormFaceLoss(2, 3, normalize="bias")


def test_normface_scale_is_learned_and_logged():
    loss = NormFaceLoss(4, 10)
    assert loss.scale.requires_grad and loss.scale.item() == 10.0
    loss(torch.randn(5, 4), torch.arange(5)).total.backward()
    assert loss.scale.grad is not None
    values = loss.scalars()
    assert values["s"] == 10.0 and values["loss_bound"] == pytest.approx(normface_loss_bound(10, 10.0))
    assert not NormFaceLoss(4, 10, learn_scale=False, scale=20).scale.requires_grad


def test_prop2_bound_matches_paper():
    # Wang et al. 2017 (NormFace), §3.3: CASIA-WebFace (n = 10,575), features and weights normalized to 1:
    # "The bound ... is 8.27"
    assert normface_loss_bound(10_575, 1.0) == pytest.approx(8.27, abs=0.005)
    n, s = 10, 4.0
    assert normface_loss_bound(n, s) == pytest.approx(math.log(1 + (n - 1) * math.exp(-n / (n - 1) * s)))


def test_prop2_bound_is_reached_by_a_regular_simplex():
    # The bound's equality case: n = d + 1 class weights forming a regular simplex, each feature on its weight.
    n = 4
    w = torch.eye(n) - 1.0 / n  # centred one-hot vectors: equal pairwise angles, sum zero
    w = F.normalize(w, dim=1)
    loss = NormFaceLoss(n, n, scale=3.0, learn_scale=False)
    with torch.no_grad():
        loss.weight.copy_(w)
    value = loss(w.clone(), torch.arange(n)).total.item()
    assert value == pytest.approx(normface_loss_bound(n, 3.0), rel=1e-5)
    # and any other well-separated arrangement does no better
    other = F.normalize(torch.randn(n, n), dim=1)
    with torch.no_grad():
        loss.weight.copy_(other)
    assert loss(other.clone(), torch.arange(n)).total.item() >= value - 1e-6


def test_normalization_gradient_is_eq4_and_orthogonal_to_x():
    torch.manual_seed(1)
    x = torch.randn(4, 6, dtype=torch.double, requires_grad=True)
    loss = NormFaceLoss(6, 5, scale=5.0).double()
    loss(x, torch.tensor([0, 1, 2, 3])).total.backward()
    # eq. 4 from dL/dx~ (autograd at the normalized feature), one sample at a time
    x_tilde = F.normalize(x.detach(), dim=1).requires_grad_(True)
    w = F.normalize(loss.weight.detach(), dim=1)
    F.cross_entropy(loss.scale.detach() * x_tilde @ w.T, torch.tensor([0, 1, 2, 3])).backward()
    g_tilde, xt, norm = x_tilde.grad, x_tilde.detach(), x.detach().norm(dim=1, keepdim=True)
    eq4 = (g_tilde - xt * (g_tilde * xt).sum(dim=1, keepdim=True)) / norm
    torch.testing.assert_close(x.grad, eq4)
    torch.testing.assert_close((x.grad * x.detach()).sum(dim=1), torch.zeros(4, dtype=torch.double))


def test_cosface_by_hand():
    loss = _with_weights(CosFaceLoss(2, 3, scale=10.0, margin=0.3))
    expected = sum(_xent([10.0 * (c - 0.3 * (j == y)) for j, c in enumerate(row)], y)
                   for row, y in zip(_cosines(), LABELS, strict=True)) / 3
    out = loss(torch.tensor(FEATS), torch.tensor(LABELS))
    assert out.total.item() == pytest.approx(expected, rel=1e-6)
    torch.testing.assert_close(out.logits, 10.0 * torch.tensor(_cosines()))  # margin-free for accuracy


def test_arcface_by_hand():
    m, s = 0.5, 8.0
    loss = _with_weights(ArcFaceLoss(2, 3, scale=s, margin=m))
    rows = []
    for row, y in zip(_cosines(), LABELS, strict=True):
        theta = math.acos(row[y])
        target = math.cos(theta + m) if theta + m <= math.pi else row[y] - m * math.sin(m)
        rows.append(_xent([s * (target if j == y else c) for j, c in enumerate(row)], y))
    assert loss(torch.tensor(FEATS), torch.tensor(LABELS)).total.item() == pytest.approx(sum(rows) / 3, rel=1e-5)


def test_arcface_falls_back_past_pi():
    loss = ArcFaceLoss(2, 1, scale=1.0, margin=0.5)
    cos = torch.tensor([[math.cos(3.0)]])  # theta = 3.0 > pi - 0.5
    assert loss.target_cosine(cos, None).item() == pytest.approx(math.cos(3.0) - 0.5 * math.sin(0.5))


def test_psi_is_eq10_and_matches_the_released_sign_form():
    theta = torch.linspace(0, math.pi, 1001, dtype=torch.double)
    c = torch.cos(theta)
    k = torch.clamp(torch.floor(4 * theta / math.pi), max=3)
    closed = (-1.0) ** k * torch.cos(4 * theta) - 2 * k
    torch.testing.assert_close(psi(c, 4), closed, atol=1e-9, rtol=0)
    # the Caffe m = 4 code: s3 (8c^4 - 8c^2 + 1) + s4, s3 = sign(c) sign(2c^2 - 1), s4 = 2 sign(c) + s3 - 3
    s3 = torch.sign(c) * torch.sign(2 * c**2 - 1)
    caffe = s3 * (8 * c**4 - 8 * c**2 + 1) + 2 * torch.sign(c) + s3 - 3
    inner = (theta - math.pi / 4).abs() > 1e-6  # sign() is 0 exactly at the pieces' joints
    inner &= (theta - math.pi / 2).abs() > 1e-6
    inner &= (theta - 3 * math.pi / 4).abs() > 1e-6
    torch.testing.assert_close(psi(c, 4)[inner], caffe[inner], atol=1e-9, rtol=0)
    assert torch.all(psi(c, 4)[1:] <= psi(c, 4)[:-1])  # monotonically decreasing on [0, pi]
    torch.testing.assert_close(psi(c, 1), c)  # m = 1: the modified softmax


def test_sphereface_lambda_schedule_is_the_released_one():
    # wy1iu/sphereface's margin_inner_product_layer at sphereface_model.prototxt's base 1000, gamma 0.12,
    # power 1, lambda_min 5: 892.86 at iter 1, 76.92 at 100, 8.26 at 1,000, floor 5 from 1,659
    assert sphereface_lambda(1) == pytest.approx(892.86, abs=0.01)
    assert sphereface_lambda(100) == pytest.approx(76.92, abs=0.01)
    assert sphereface_lambda(1000) == pytest.approx(8.26, abs=0.01)
    assert sphereface_lambda(1658) > 5.0 and sphereface_lambda(1659) == 5.0


def test_sphereface_value_and_iteration_buffer():
    loss = _with_weights(SphereFaceLoss(2, 3))
    out = loss(torch.tensor(FEATS), torch.tensor(LABELS))
    assert int(loss.iteration) == 1
    lam = sphereface_lambda(1)
    rows = []
    for f, row, y in zip(FEATS, _cosines(), LABELS, strict=True):
        norm, theta = math.sqrt(_dot(f, f)), math.acos(row[y])
        k = min(math.floor(4 * theta / math.pi), 3)
        psi_y = (-1) ** k * math.cos(4 * theta) - 2 * k
        target = norm * (lam * row[y] + psi_y) / (1 + lam)
        rows.append(_xent([target if j == y else norm * c for j, c in enumerate(row)], y))
    assert out.total.item() == pytest.approx(sum(rows) / 3, rel=1e-5)
    loss.eval()
    loss(torch.tensor(FEATS), torch.tensor(LABELS))
    assert int(loss.iteration) == 1  # evaluation does not advance the annealing
    restored = SphereFaceLoss(2, 3)
    restored.load_state_dict(loss.state_dict())
    assert int(restored.iteration) == 1 and restored.scalars()["lambda"] == pytest.approx(lam)


SHARDED = {
    "normface": lambda: NormFaceLoss(6, 7, scale=5.0),
    "normface-features": lambda: NormFaceLoss(6, 7, normalize="features", scale=3.0),
    "cosface": lambda: CosFaceLoss(6, 7, scale=10.0, margin=0.3),
    "arcface": lambda: ArcFaceLoss(6, 7, scale=8.0, margin=0.5),
    "sphereface": lambda: SphereFaceLoss(6, 7),
}


@pytest.mark.parametrize("name", sorted(SHARDED))
def test_margin_logits_of_two_weight_shards_are_the_full_logits(name):
    """A model-parallel classifier's view: each rank holds some classes' weights and the target's column in
    its block (or -1); the hooks on each block, concatenated, are the full loss's logits and loss."""
    torch.manual_seed(2)
    loss = SHARDED[name]().double().eval()
    if isinstance(loss, SphereFaceLoss):
        loss.iteration.fill_(100)  # lambda = 76.9: the margin matters
    x, labels = torch.randn(9, 6, dtype=torch.double), torch.tensor([0, 6, 3, 4, 2, 5, 1, 4, 0])
    blocks = []
    for lo, hi in ((0, 4), (4, 7)):
        inside = (labels >= lo) & (labels < hi)
        target = torch.where(inside, labels - lo, torch.full_like(labels, -1))
        cos = loss.class_similarities(x, loss.weight[lo:hi])
        blocks.append(loss.margin_logits(cos, x, target))
    sharded = torch.cat(blocks, dim=1)
    full = loss.margin_logits(loss.class_similarities(x, loss.weight), x, labels)
    torch.testing.assert_close(sharded, full, rtol=0, atol=1e-12)
    torch.testing.assert_close(F.cross_entropy(sharded, labels), loss(x, labels).total, rtol=0, atol=1e-12)
    margin_free = loss.logit_scale(x) * loss.class_similarities(x, loss.weight)
    assert torch.allclose(full, margin_free) == isinstance(loss, NormFaceLoss)  # NormFace alone has no margin
    torch.testing.assert_close(loss(x, labels).logits, margin_free, rtol=0, atol=1e-12)


def test_sphereface_anneals_once_per_training_forward():
    loss = SphereFaceLoss(2, 3)
    loss(torch.tensor(FEATS), torch.tensor(LABELS))
    loss(torch.tensor(FEATS), torch.tensor(LABELS))
    assert int(loss.iteration) == 2
