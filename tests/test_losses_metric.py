"""Contrastive, triplet (in-batch, mined) and the NormFace agent losses C-contrastive / C-triplet (eqs. 7, 8, 10, 11,
prop. 3) against hand computation."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from facetrain.losses import CContrastiveLoss, ContrastiveLoss, CTripletLoss, TripletLoss

ANGLES = [0.0, 0.3, 1.5, 1.9, 3.0, 2.6]  # points on the unit circle
LABELS = [0, 0, 1, 1, 2, 2]


def _points():
    return [(math.cos(a), math.sin(a)) for a in ANGLES]


def _d(a, b):
    """Squared Euclidean distance between unit vectors."""
    return (a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2


def _feats(scale=3.0):
    return torch.tensor(_points()) * scale  # the losses normalize, so the radius must not matter


def test_contrastive_all_pairs_by_hand():
    p, m = _points(), 1.5
    pos = [_d(p[i], p[j]) for i, j in itertools.permutations(range(6), 2) if LABELS[i] == LABELS[j]]
    neg = [max(0.0, m - _d(p[i], p[j])) for i, j in itertools.permutations(range(6), 2) if LABELS[i] != LABELS[j]]
    out = ContrastiveLoss(margin=m)(_feats(), torch.tensor(LABELS))
    assert out.total.item() == pytest.approx(sum(pos) / len(pos) + sum(neg) / len(neg), rel=1e-5)


def test_contrastive_hard_mining_by_hand():
    p, m = _points(), 1.5
    pos, neg = [], []
    for i in range(6):
        pos.append(max(_d(p[i], p[j]) for j in range(6) if j != i and LABELS[j] == LABELS[i]))
        neg.append(max(0.0, m - min(_d(p[i], p[j]) for j in range(6) if LABELS[j] != LABELS[i])))
    out = ContrastiveLoss(margin=m, mining="hard")(_feats(), torch.tensor(LABELS))
    assert out.total.item() == pytest.approx(sum(pos) / 6 + sum(neg) / 6, rel=1e-5)


def test_contrastive_semihard_mining_by_hand():
    p, m = _points(), 1.5
    pos = [_d(p[i], p[j]) for i, j in itertools.permutations(range(6), 2) if LABELS[i] == LABELS[j]]
    neg = []
    for i in range(6):
        far = max(_d(p[i], p[j]) for j in range(6) if j != i and LABELS[j] == LABELS[i])
        neg += [m - _d(p[i], p[j]) for j in range(6) if LABELS[j] != LABELS[i] and far < _d(p[i], p[j]) < m]
    assert neg, "the hand-built points must have semi-hard negatives for this test to mean something"
    out = ContrastiveLoss(margin=m, mining="semihard")(_feats(), torch.tensor(LABELS))
    assert out.total.item() == pytest.approx(sum(pos) / len(pos) + sum(neg) / len(neg), rel=1e-5)


def _triplet_by_hand(mining: str, m: float) -> float:
    p = _points()
    d = [[_d(a, b) for b in p] for a in p]
    pos = [(a, q) for a, q in itertools.permutations(range(6), 2) if LABELS[a] == LABELS[q]]
    negs = {a: [n for n in range(6) if LABELS[n] != LABELS[a]] for a in range(6)}
    if mining == "semihard":
        losses = []
        for a, q in pos:
            outside = [d[a][n] for n in negs[a] if d[a][n] > d[a][q]]
            chosen = min(outside) if outside else max(d[a][n] for n in negs[a])
            losses.append(max(0.0, m + d[a][q] - chosen))
        return sum(losses) / len(losses)
    if mining == "hard":
        losses = [max(0.0, m + max(d[a][q] for q in range(6) if q != a and LABELS[q] == LABELS[a])
                      - min(d[a][n] for n in negs[a])) for a in range(6)]
        return sum(losses) / 6
    losses = [m + d[a][q] - d[a][n] for a, q in pos for n in negs[a]]
    active = [v for v in losses if v > 0]
    return sum(active) / len(active)


@pytest.mark.parametrize("mining", ["semihard", "hard", "all"])
def test_triplet_mining_by_hand(mining):
    m = 0.9
    out = TripletLoss(margin=m, mining=mining)(_feats(), torch.tensor(LABELS))
    assert out.total.item() == pytest.approx(_triplet_by_hand(mining, m), rel=1e-5)
    assert out.total.item() > 0


@pytest.mark.parametrize("loss", [ContrastiveLoss(), ContrastiveLoss(mining="hard"),
                                  ContrastiveLoss(mining="semihard"), TripletLoss(),
                                  TripletLoss(mining="hard"), TripletLoss(mining="all")], ids=repr)
def test_pair_losses_survive_batches_without_pairs(loss):
    x = torch.randn(2, 4, requires_grad=True)
    out = loss(x, torch.tensor([0, 1]))  # no positive pair at all
    assert torch.isfinite(out.total)
    out.total.backward()
    assert torch.isfinite(x.grad).all()
    assert TripletLoss()(x, torch.tensor([0, 0])).total.item() == 0.0  # no negative: a zero term


AGENTS = [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.2)]


def _with_agents(loss):
    with torch.no_grad():
        loss.agents.copy_(torch.tensor(AGENTS) * 2.0)  # agents are normalized inside too
    return loss


def _agent_distances():
    p, w = _points(), [tuple(v / math.hypot(*a) for v in a) for a in AGENTS]
    return [[_d(f, a) for a in w] for f in p]


def test_c_contrastive_by_hand():
    m = 1.0
    rows = [d[y] + sum(max(0.0, m - d[j]) for j in range(3) if j != y)
            for d, y in zip(_agent_distances(), LABELS, strict=True)]
    loss = _with_agents(CContrastiveLoss(2, 3, margin=m))
    out = loss(_feats(), torch.tensor(LABELS))
    assert out.total.item() == pytest.approx(sum(rows) / 6, rel=1e-5)
    torch.testing.assert_close(out.logits, -torch.tensor(_agent_distances()))


@pytest.mark.parametrize("negatives", ["hardest", "all"])
def test_c_triplet_by_hand(negatives):
    m = 0.8
    rows = []
    for d, y in zip(_agent_distances(), LABELS, strict=True):
        hinges = {j: max(0.0, m + d[y] - d[j]) for j in range(3) if j != y}
        if negatives == "hardest":
            rows.append(hinges[min(hinges, key=lambda j: d[j])])
        else:
            rows.append(sum(hinges.values()) / 2)
    loss = _with_agents(CTripletLoss(2, 3, margin=m, negatives=negatives))
    assert loss(_feats(), torch.tensor(LABELS)).total.item() == pytest.approx(sum(rows) / 6, rel=1e-5)


def test_c_triplet_center_pulls_even_when_satisfied():
    plain, pulled = _with_agents(CTripletLoss(2, 3, margin=0.0)), _with_agents(CTripletLoss(2, 3, margin=0.0, pull_weight=1.0))
    labels = torch.arange(3)  # every feature a little off its own agent: the triplets hold, the pull does not vanish
    feats = torch.tensor(AGENTS) * 1.2 + torch.tensor([[0.0, 0.1], [0.1, 0.0], [0.0, -0.1]])
    assert plain(feats, labels).total.item() == 0.0
    out = pulled(feats, labels)
    own = [_agent_distances_for(feats)[i][i] for i in range(3)]
    assert out.terms["agent_pull"].item() == pytest.approx(sum(own) / 3, rel=1e-4) and out.total.item() > 0


def _agent_distances_for(feats):
    f = F.normalize(feats, dim=1)
    w = F.normalize(torch.tensor(AGENTS), dim=1)
    return ((f[:, None, :] - w[None, :, :]) ** 2).sum(-1).tolist()


def test_prop3_distortion_is_bounded_and_tracked():
    torch.manual_seed(0)
    f = F.normalize(torch.randn(40, 8), dim=1)
    labels = torch.arange(40) % 4
    agents = F.normalize(torch.randn(4, 8), dim=1)
    probe = F.normalize(torch.randn(8), dim=0)  # f_0 of the proposition
    for c in range(4):
        members = f[labels == c]
        dist_fj = (probe - members).norm(dim=1)
        distortion = ((dist_fj - (probe - agents[c]).norm()) ** 2).mean()
        bound = ((members - agents[c]).norm(dim=1) ** 2).mean()
        assert distortion <= bound + 1e-6
    loss = CContrastiveLoss(8, 4)
    with torch.no_grad():
        loss.agents.copy_(agents)
    loss(f, labels)
    per_class = torch.stack([((f[labels == c] - agents[c]) ** 2).sum(1).mean() for c in range(4)]).mean()
    assert loss.scalars()["distortion_bound"] == pytest.approx(per_class.item(), rel=1e-5)  # first batch: the value
    loss(f, labels)
    assert loss.scalars()["distortion_bound"] == pytest.approx(per_class.item(), rel=1e-5)  # the average of equals
