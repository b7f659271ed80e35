"""Sub-center ArcFace and ElasticFace against the authors' released code's values, ElasticFace's seeded draws and
their exact resume. (The sharded forms: tests/test_sharded_classifier.py; learning: tests/test_losses_training.py.)

The reference values were computed once on the features and weights below: sub-center ArcFace with
insightface's `recognition/subcenter_arcface/train_parall.py` margin symbol (fc7 [C*K, D] -> reshape to
[B, C, K] -> max -> arccos + m -> cos -> x s) transcribed to numpy; ElasticFace by running fdbtrs/ElasticFace's
`utils/losses.py` (ElasticArcFace, ElasticCosFace, plus=False/True) with `torch.normal` replaced by the fixed
margins below. All in float64, to 10 decimals.
"""

from __future__ import annotations

import math

import pytest
import torch

from facetrain.errors import FacetrainError
from facetrain.losses import ArcFaceLoss, ElasticFaceLoss, SubCenterArcFaceLoss
from facetrain.losses.classifier.elasticface import plus_order
from facetrain.run.checkpoint import load_checkpoint
from facetrain.sharded.rows import building_rows
from facetrain.sharded.shards import shard_bounds
from facetrain.train import train

B, D, C, K = 5, 4, 3, 3
LABELS = torch.tensor([0, 2, 1, 0, 2])


def _features() -> torch.Tensor:
    i, j = torch.arange(B, dtype=torch.float64)[:, None], torch.arange(D, dtype=torch.float64)[None, :]
    return torch.sin(1.3 * i + 0.7 * j + 0.5)


def _subcenters() -> torch.Tensor:
    """[C, K, D]; class c's sub-centres are insightface's fc7 rows cK ... cK + K - 1."""
    c = torch.arange(C, dtype=torch.float64)[:, None, None]
    k = torch.arange(K, dtype=torch.float64)[None, :, None]
    j = torch.arange(D, dtype=torch.float64)[None, None, :]
    return torch.cos(0.9 * c + 1.7 * k + 0.4 * j + 0.2)


def _with_weight(loss, weight: torch.Tensor):
    loss = loss.double()
    with torch.no_grad():
        loss.weight.copy_(weight)
    return loss


SUBCENTER_LOSS = 40.5697379471  # s = 64, m = 0.5, K = 3; the target angles are 29.2 .. 79.3 degrees (no fallback)
SUBCENTER_TARGET_LOGITS = [34.0443058, -19.69432119, 25.52404157, 50.24966994, 9.08186978]


def test_subcenter_arcface_equals_the_released_values():
    loss = _with_weight(SubCenterArcFaceLoss(D, C), _subcenters())
    x = _features()
    out = loss(x, LABELS)
    assert out.total.item() == pytest.approx(SUBCENTER_LOSS, rel=1e-6, abs=1e-6)
    logits = loss.margin_logits(loss.class_similarities(x, loss.weight), x, LABELS)
    torch.testing.assert_close(logits[torch.arange(B), LABELS], torch.tensor(SUBCENTER_TARGET_LOGITS, dtype=torch.float64),
                               rtol=1e-6, atol=1e-6)
    one = _with_weight(SubCenterArcFaceLoss(D, C, subcenters=1), _subcenters()[:, :1])
    arc = _with_weight(ArcFaceLoss(D, C), _subcenters()[:, 0])
    # K = 1 is ArcFace (here with its fallback past pi - m: sample 3's target angle is 163 degrees)
    torch.testing.assert_close(one(x, LABELS).total, arc(x, LABELS).total, rtol=1e-12, atol=1e-12)


def test_subcenter_weights_keep_a_class_together_in_every_rank_block():
    torch.manual_seed(0)
    whole = SubCenterArcFaceLoss(8, 7, subcenters=4).weight.detach()
    assert whole.shape == (7, 4, 8)
    torch.testing.assert_close(whole.norm(dim=2), torch.ones(7, 4))
    assert not torch.equal(whole[:, 0], whole[:, 1])
    for r in range(3):
        torch.manual_seed(0)
        with building_rows(r, 3):
            rows = SubCenterArcFaceLoss(8, 7, subcenters=4).weight.detach()
        start, stop = shard_bounds(7, r, 3)
        assert torch.equal(rows, whole[start:stop])  # whole classes, each with its 4 sub-centres
    with pytest.raises(FacetrainError, match="loss.subcenters=0"):
        SubCenterArcFaceLoss(8, 7, subcenters=0)


MARGINS = {"arc": [0.47, 0.55, 0.52, 0.43, 0.58], "cos": [0.31, 0.38, 0.36, 0.29, 0.41]}
ELASTIC = {  # (variant, plus): (loss, target logits), the class weights being each class's first sub-centre
    ("arc", False): (60.1100047795, [35.65456193, -36.07182946, 15.74580008, -63.35774852, -62.58007384]),
    ("arc", True): (58.6748223593, [37.75141114, -34.46985364, 18.82647034, -61.29477623, -62.14978011]),
    ("cos", False): (62.2875072391, [36.01865731, -27.43969083, 21.44737954, -79.92024364, -71.23880911]),
    ("cos", True): (62.5435072391, [37.29865731, -26.15969083, 24.64737954, -87.60024364, -69.31880911]),
}


@pytest.mark.parametrize(("variant", "plus"), list(ELASTIC))
def test_elasticface_equals_the_released_values(variant, plus, monkeypatch):
    loss = _with_weight(ElasticFaceLoss(D, C, variant=variant, plus=plus), _subcenters()[:, 0])
    monkeypatch.setattr(loss, "draw_margins", lambda count, device: torch.tensor(MARGINS[variant], dtype=torch.float64))
    x = _features()
    value, target_logits = ELASTIC[(variant, plus)]
    assert loss(x, LABELS).total.item() == pytest.approx(value, rel=1e-6, abs=1e-6)
    logits = loss.margin_logits(loss.class_similarities(x, loss.weight), x, LABELS)
    torch.testing.assert_close(logits[torch.arange(B), LABELS], torch.tensor(target_logits, dtype=torch.float64),
                               rtol=1e-6, atol=1e-6)


def test_plus_order_is_the_released_indexing():
    """Margins sorted ascending, sample i taking the one at the rank of the i-th largest cosine (not the inverse)."""
    got = plus_order(torch.tensor([0.3, 0.1, 0.2]), torch.tensor([0.1, 0.9, 0.5]))
    assert got.tolist() == pytest.approx([0.2, 0.3, 0.1])  # descending-cosine order [1, 2, 0] into [0.1, 0.2, 0.3]


def test_elasticface_defaults_are_the_papers():
    cases = {("arc", False): (0.5, 0.05), ("arc", True): (0.5, 0.0175), ("cos", False): (0.35, 0.05),
             ("cos", True): (0.35, 0.02)}
    for (variant, plus), (m, sigma) in cases.items():
        loss = ElasticFaceLoss(4, 3, variant=variant, plus=plus)
        assert (loss.margin, loss.sigma, float(loss.scale)) == (m, sigma, 64.0)
    with pytest.raises(FacetrainError, match="loss.variant='sphere'"):
        ElasticFaceLoss(4, 3, variant="sphere")


def test_elasticface_draws_depend_on_seed_and_iteration_only():
    loss = ElasticFaceLoss(4, 3)
    loss.classes.seed, loss.classes.iteration = 7, 12
    first = loss.draw_margins(20_000, torch.device("cpu"))
    assert torch.equal(first, loss.draw_margins(20_000, torch.device("cpu")))  # a resume at iteration 12 redraws them
    assert first.mean().item() == pytest.approx(0.5, abs=5 * 0.05 / math.sqrt(20_000))  # 5 standard errors
    assert first.std().item() == pytest.approx(0.05, rel=0.03)
    loss.classes.iteration = 13
    assert not torch.equal(loss.draw_margins(20_000, torch.device("cpu")), first)
    loss.classes.seed, loss.classes.iteration = 8, 12
    assert not torch.equal(loss.draw_margins(20_000, torch.device("cpu")), first)


def test_elasticface_resumes_exactly(train_cfg, tmp_path):
    """4 iterations straight, and 2 then a resume to 4, end with the same weights (the margins are redrawn alike)."""
    common = ["loss=elasticface", "loss.plus=true", "loss.sigma=0.2", "loss.scale=16",
              "warmup.iterations=0", "schedule.milestones=[3]"]  # a schedule that ignores where a part stops
    train(train_cfg(*common, run_dir=tmp_path / "full"))
    train(train_cfg(*common, "iterations=2", run_dir=tmp_path / "resumed"))
    train(train_cfg(*common, "resume=true", run_dir=tmp_path / "resumed"))
    full = load_checkpoint(tmp_path / "full" / "checkpoints" / "last.pt")
    resumed = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert full["iteration"] == resumed["iteration"] == 4
    for part in ("backbone", "loss"):
        for key, value in full["model"][part].items():
            torch.testing.assert_close(resumed["model"][part][key], value, rtol=0, atol=0)
