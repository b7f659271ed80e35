"""The loss root class: every loss config builds from config alone into a FaceLoss, the root's defaults, the
CombinedLoss terms as Hydra partials (and their overrides), and `correct` against a hand count."""

import inspect

import pytest
import torch
import torch.nn.functional as F
from helpers import REPO, compose_config
from hydra.utils import instantiate
from torch import nn

import facetrain.losses
from facetrain.losses import CombinedLoss, FaceLoss

LOSSES = sorted(p.stem for p in (REPO / "configs" / "loss").glob("*.yaml"))
DIM, CLASSES, BATCH = 8, 5, 20


def _build(option: str, *overrides: str) -> tuple[nn.Module, FaceLoss]:
    """The configured head and loss, built as `build_parts` builds them (sizes from the data, not the config)."""
    cfg = compose_config("train", [f"loss={option}", *overrides])
    return instantiate(cfg.head, num_classes=CLASSES), instantiate(cfg.loss, embedding_dim=DIM, num_classes=CLASSES)


def _batch(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """BATCH seeded features with every class present K = 4 times (so the P x K losses have pairs)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(BATCH, DIM, generator=generator), torch.arange(CLASSES).repeat_interleave(BATCH // CLASSES)


@pytest.mark.parametrize("option", LOSSES)
def test_every_loss_config_builds_a_face_loss(option):
    torch.manual_seed(0)
    head, loss = _build(option)
    assert isinstance(loss, FaceLoss)
    if isinstance(loss, CombinedLoss):
        assert all(isinstance(term, FaceLoss) for term in loss.terms.values())
    features, labels = _batch()
    out = loss(head(features), labels)
    assert out.total.ndim == 0 and torch.isfinite(out.total)
    assert out.correct is None or (out.correct.ndim == 0 and 0 <= int(out.correct) <= BATCH)
    assert isinstance(loss.samples_per_identity, int) and isinstance(loss.scalars(), dict)
    assert all(name in dict(loss.named_parameters(recurse=False)) for name in loss.param_multipliers())


def test_every_exported_loss_derives_from_face_loss():
    modules = [obj for obj in vars(facetrain.losses).values() if inspect.isclass(obj) and issubclass(obj, nn.Module)]
    not_losses = {facetrain.losses.AgentDistortion}  # a moving average the agent losses keep, not a loss
    assert [m.__name__ for m in modules if m not in not_losses and not issubclass(m, FaceLoss)] == []


class _Probe(FaceLoss):
    """The smallest loss: one parameter, one buffer, nothing declared."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(2))
        self.register_buffer("b", torch.ones(2))

    def forward(self, features, labels):
        return facetrain.losses.LossOutput(total=(features @ self.w).sum())


def test_root_defaults_and_multipliers():
    loss = _Probe()
    assert loss.samples_per_identity == 0 and loss.term_name == ""
    assert loss.param_multipliers() == {} and loss.scalars() == {}
    out = loss(torch.ones(3, 2), torch.zeros(3, dtype=torch.long))
    assert out.correct is None and out.logits is None and out.terms == {}
    loss.set_multipliers("w", 2, 0)
    loss.set_multipliers("b", 3, 3)  # a buffer (like a fixed scale) is not a parameter: never listed
    assert loss.param_multipliers() == {"w": (2.0, 0.0)}
    with pytest.raises(NotImplementedError, match="forward"):
        FaceLoss()(torch.ones(1, 2), torch.zeros(1, dtype=torch.long))


def test_learned_and_fixed_scale_multipliers():
    learned = _build("normface", "loss.scale_lr_mult=2", "loss.weight_wd_mult=0")[1]
    assert learned.param_multipliers() == {"weight": (1.0, 0.0), "scale": (2.0, 1.0)}
    assert _build("normface", "loss.learn_scale=false")[1].param_multipliers() == {"weight": (1.0, 1.0)}


def test_combined_terms_take_user_overrides():
    _, loss = _build("center", "loss.terms.center.weight=0.008", "loss.terms.center.loss.alpha=0.3")
    assert loss.weights == {"softmax": 1.0, "center": 0.008} and loss.terms["center"].alpha == 0.3
    assert loss.terms["softmax"].classifier.weight.shape == (CLASSES, DIM)
    _, ring = _build("ring", "loss.terms.ring.loss.radius_init=2.5")
    assert ring.scalars() == {"ring_radius": 2.5} and ring.param_multipliers() == {}
    assert ring.terms["ring"].param_multipliers() == {"radius": (2.0, 0.0)}
    assert _build("range")[1].samples_per_identity == 2 and _build("center")[1].samples_per_identity == 0


def _softmax_scores(loss, x):
    return x @ loss.classifier.weight.T + loss.classifier.bias


def _normalized_scores(loss, x):
    return loss.scale.clamp(min=0.01) * F.normalize(x, dim=1) @ F.normalize(loss.weight, dim=1).T


# option -> (the term whose scores decide, by hand: the margin-free logits of the test-time decision rule)
HAND = {
    "softmax": (None, _softmax_scores),
    "l2softmax": (None, _softmax_scores),
    "normface": (None, _normalized_scores),
    "arcface": (None, _normalized_scores),
    "center": ("softmax", _softmax_scores),
    "softmax_c_contrastive": ("normface", _normalized_scores),
}


@pytest.mark.parametrize("option", sorted(HAND))
def test_correct_is_the_hand_count(option):
    torch.manual_seed(0)
    head, loss = _build(option)
    term, scores = HAND[option]
    features, _ = _batch(seed=1)
    with torch.no_grad():
        x = head(features)
        predicted = scores(loss.terms[term] if term else loss, x).argmax(dim=1)
    wrong = 7  # the first rows get a label other than the prediction: the count is 13, not 0 or 20
    labels = torch.cat([(predicted[:wrong] + 1) % CLASSES, predicted[wrong:]])
    out = loss(x, labels)
    assert out.correct.ndim == 0 and not out.correct.requires_grad
    assert int(out.correct) == int((predicted == labels).sum()) == BATCH - wrong
