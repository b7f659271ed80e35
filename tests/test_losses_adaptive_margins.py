"""AdaFace, MagFace and CurricularFace against values computed with the authors' released code (mk-minchul/AdaFace
head.py, IrvingMeng/MagFace models/magface.py MagLinear + MagLoss, HuangYG123/CurricularFace head/metrics.py) on
the same fixed features and class weights, in float64: the loss, the running statistics after each of two
batches, and the gradient reaching each feature (its row sum). Only the values are kept here, not their code."""

import pytest
import torch

from facetrain.errors import FacetrainError
from facetrain.losses import AdaFaceLoss, CurricularFaceLoss, MagFaceLoss

B, D, C = 6, 4, 5
SCALES = [5.0, 12.0, 25.0, 40.0, 80.0, 130.0]  # feature norms 7 .. 184: MagFace's clamp at both ends, AdaFace's clip


def _inputs(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch `step` (0, 1): deterministic features of spread norms and their labels."""
    x = torch.sin(torch.arange(B * D, dtype=torch.float64) * 0.7 + 0.3 + step).view(B, D)
    x = x * torch.tensor(SCALES, dtype=torch.float64).view(-1, 1)
    if step:
        return x.flip(0), torch.tensor([2, 2, 0, 4, 3, 1])
    return x, torch.tensor([0, 1, 2, 3, 4, 1])


WEIGHTS = torch.cos(torch.arange(C * D, dtype=torch.float64) * 1.3 + 0.1).view(C, D)

# (loss, running statistics, gradient row sums) per batch, from the authors' code
REFERENCE = {
    "adaface": [  # m 0.4, h 0.333, s 64, t_alpha 0.01 (the released training default); (batch_mean, batch_std)
        (65.813166790128, [20.322147878473, 99.402056952599],
         [-1.368734360337, 0.126861293858, -0.267318918617, 0.173104911673, 0.054339701611, -0.03361050338]),
        (49.185866903896, [20.655603676133, 98.809460175117],
         [0.042106730006, -0.051813714743, -0.106825828202, -0.234597000749, 0.104688258466, -0.039135348051])],
    "adaface_t1": [  # t_alpha 1: each batch's own statistics, a wide spread of margins
        (65.939700517882, [52.214787847337, 40.20569525995],
         [-1.321264379721, 0.122558048572, -0.267766657109, 0.163678061993, 0.051491316166, -0.036068089795]),
        (48.946489541933, [53.667727644442, 40.142379204395],
         [0.042030391011, -0.052883537557, -0.108332468361, -0.230701281225, 0.099702568989, 0.048219701101])],
    "magface": [  # s 64, [10, 110], [0.45, 0.8], lambda_g 35, easy margin; (loss_id, g)
        (63.69680912436, [62.23447106857, 0.04178108730831],
         [-1.374103186524, 0.112030459452, -0.226941897232, 0.163682425218, 0.084073121619, -0.002662803232])],
    "magface_hard": [  # easy_margin false
        (71.16424323002, [69.70190517423, 0.04178108730831],
         [-1.171414834542, 0.112030459452, -0.226941897232, 0.136466278454, 0.084073121619, -0.002662803232])],
    "curricularface": [  # m 0.5, s 64; t (14 and 13 hard negatives in the two batches)
        (53.577913484073, [0.001749294597],
         [-1.296576278616, 0.282088548974, -0.431972829076, 0.226809161397, 0.100605775944, -0.003193980506]),
        (40.030902393029, [0.003525332499],
         [0.075726686511, -0.062999520752, -0.107221329607, -0.217168689283, 0.221504704716, 0.264310579514])],
}

MAKE = {
    "adaface": lambda: AdaFaceLoss(D, C),
    "adaface_t1": lambda: AdaFaceLoss(D, C, t_alpha=1.0),
    "magface": lambda: MagFaceLoss(D, C),
    "magface_hard": lambda: MagFaceLoss(D, C, easy_margin=False),
    "curricularface": lambda: CurricularFaceLoss(D, C),
}


def _state(loss, out) -> list[float]:
    if isinstance(loss, AdaFaceLoss):
        return [loss.batch_mean.item(), loss.batch_std.item()]
    if isinstance(loss, MagFaceLoss):
        return [out.terms["magface"].item(), out.terms["magface_g"].item()]
    return [loss.t.item()]


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_equals_the_authors_code(name):
    loss = MAKE[name]().double()
    with torch.no_grad():
        loss.weight.copy_(WEIGHTS)
    for step, (value, state, grad_rows) in enumerate(REFERENCE[name]):
        x, labels = _inputs(step)
        x.requires_grad_(True)
        out = loss(x, labels)
        out.total.backward()
        close = {"rtol": 0, "atol": 1e-6}
        torch.testing.assert_close(out.total.item(), value, **close)
        torch.testing.assert_close(_state(loss, out), state, **close)
        torch.testing.assert_close(x.grad.sum(dim=1).tolist(), grad_rows, **close)


def test_running_statistics_stay_put_in_eval_mode():
    for name in ("adaface", "curricularface"):
        loss = MAKE[name]().double().eval()
        before = {k: v.clone() for k, v in loss.named_buffers()}
        loss(*_inputs(0))
        assert all(torch.equal(before[k], v) for k, v in loss.named_buffers())


def test_the_margins_follow_the_norm():
    """MagFace: m(a) is l_m at a <= l_a and u_m at a >= u_a, linear between; g is the paper's 1/a + a/u_a^2.
    AdaFace: a sample of higher norm than the batch mean gets a larger angular and a smaller additive margin."""
    mag = MagFaceLoss(D, C)
    a = mag.norm(torch.tensor([[3.0, 4.0], [30.0, 40.0], [300.0, 400.0]]))
    torch.testing.assert_close(mag.margin(a).view(-1), torch.tensor([0.45, 0.45 + 0.35 * 40 / 100, 0.8]))
    torch.testing.assert_close(mag.regularizer(a).view(-1), 1 / a.view(-1) + a.view(-1) / 110 ** 2)
    ada = AdaFaceLoss(D, C).eval()
    ada.batch_mean.fill_(20.0), ada.batch_std.fill_(10.0)
    cos = torch.full((2, 1), 0.5)
    low, high = ada.target_cosine(cos, torch.tensor([[10.0, 0, 0, 0], [30.0, 0, 0, 0]]))
    # z = 0.333 * (-1, +1): low: cos(acos 0.5 + 0.1332) - 0.2668; high: cos(acos 0.5 - 0.1332) - 0.5332
    torch.testing.assert_close(torch.cat([low, high]), torch.cos(torch.tensor([1.0472 + 0.1332, 1.0472 - 0.1332]))
                               - torch.tensor([0.2668, 0.5332]), atol=1e-4, rtol=0)


def test_bad_options_are_refused_in_one_line():
    for make, match in ((lambda: MagFaceLoss(D, C, l_a=110, u_a=10), "l_a"),
                        (lambda: AdaFaceLoss(D, C, t_alpha=0), "t_alpha"),
                        (lambda: CurricularFaceLoss(D, C, momentum=2), "momentum")):
        with pytest.raises(FacetrainError, match=match):
            make()

