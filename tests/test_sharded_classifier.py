"""The sharded classifier (model parallel) and class sampling: 2 gloo processes give one process's loss and gradients.

One spawn checks every case (starting processes is the slow part). Everything runs in float64, so "equal"
means equal to round-off (1e-10), far inside a 1e-6 tolerance.
"""

from __future__ import annotations

import contextlib
import math
import os

import pytest
import torch
import torch.distributed as dist
import torch.nn.functional as F
from helpers import fork_gloo_ranks
from torch import nn

from facetrain.distributed.rank import rank_rows
from facetrain.errors import FacetrainError
from facetrain.losses import (
    AgentLoss,
    ArcFaceLoss,
    CContrastiveLoss,
    CenterLoss,
    CosFaceLoss,
    CTripletLoss,
    ElasticFaceLoss,
    NormFaceLoss,
    RingLoss,
    SoftmaxLoss,
    SphereFaceLoss,
    SubCenterArcFaceLoss,
)
from facetrain.run.checkpoint import load_checkpoint
from facetrain.sharded import rows as class_rows
from facetrain.sharded import state as sharded_state
from facetrain.sharded.rows import building_rows
from facetrain.sharded.shards import ClassShard, shard_bounds
from facetrain.sharded.state import gather_checkpoint, localize_checkpoint, setup_class_shards
from facetrain.train.model_and_loss import ModelAndLoss, wrap_for_ranks

B, IN, D, C, WORLD = 8, 6, 4, 13, 2  # C = 13: blocks of 7 and 6 classes
LABELS = [0, 3, 3, 7, 12, 7, 5, 0]  # 5 distinct classes: with sample_rate 0.5, 7 sampled, 2 of them negatives
SEED, ITERATION, ALPHA = 5, 3, 4.0

LOSSES = {
    "softmax": (lambda rate: SoftmaxLoss(D, C, sample_rate=rate), False),
    "l2softmax": (lambda rate: SoftmaxLoss(D, C, sample_rate=rate), True),
    "normface": (lambda rate: NormFaceLoss(D, C, scale=5.0, learn_scale=True, sample_rate=rate), False),
    "arcface": (lambda rate: ArcFaceLoss(D, C, scale=8.0, margin=0.5, sample_rate=rate), False),
    "subcenter_arcface": (lambda rate: SubCenterArcFaceLoss(D, C, subcenters=3, scale=8.0, sample_rate=rate), False),
    "elasticface_plus": (lambda rate: ElasticFaceLoss(D, C, scale=8.0, sigma=0.2, plus=True, sample_rate=rate), False),
    "elasticface_cos": (lambda rate: ElasticFaceLoss(D, C, variant="cos", scale=8.0, sigma=0.2, sample_rate=rate), False),
    "cosface": (lambda rate: CosFaceLoss(D, C, scale=8.0, margin=0.35, sample_rate=rate), False),
    "sphereface": (lambda rate: SphereFaceLoss(D, C, m=4, sample_rate=rate), False),
}
AGENTS = {  # sharded, never sampled
    "c_contrastive": (lambda rate: CContrastiveLoss(D, C, margin=1.0), False),
    "c_triplet_hardest": (lambda rate: CTripletLoss(D, C, margin=0.8, pull_weight=0.5), False),
    "c_triplet_all": (lambda rate: CTripletLoss(D, C, margin=0.8, negatives="all", pull_weight=0.5), False),
}
CASES = [(name, rate) for name in LOSSES for rate in (1.0, 0.5)] + [(name, 1.0) for name in AGENTS]


class _Scale(nn.Module):
    """The head: identity, or L2-normalize and scale to ALPHA (L2-softmax)."""

    def __init__(self, l2: bool):
        super().__init__()
        self.l2 = l2

    def forward(self, f):
        return ALPHA * F.normalize(f, dim=1) if self.l2 else f


class _Tiny(nn.Module):
    """A FaceModel-shaped pair: a one-linear-layer backbone and the head, giving (embedding, features)."""

    def __init__(self, l2: bool):
        super().__init__()
        self.backbone, self.head = nn.Linear(IN, D), _Scale(l2)

    def forward(self, x):
        e = self.backbone(x)
        return e, self.head(e)


@torch.no_grad()
def pad_gather_rows(x: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Stack every rank's rows when the ranks hold different numbers of them (`counts`, in rank order):
    padded to the largest for the collective, then trimmed. The test's way to put the ranks' gradients side by side."""
    if dist.get_world_size() <= 1:
        return x
    most = max(counts)
    padded = x.new_zeros((most, *x.shape[1:]))
    padded[:x.shape[0]] = x
    parts = [torch.empty_like(padded) for _ in counts]
    dist.all_gather(parts, padded)
    return torch.cat([part[:n] for part, n in zip(parts, counts, strict=True)])


def _inputs():
    g = torch.Generator().manual_seed(11)
    return torch.randn(B, IN, generator=g, dtype=torch.float64), torch.tensor(LABELS)


def _build(name: str, rate: float):
    torch.manual_seed(0)
    make, l2 = (LOSSES | AGENTS)[name]
    model, loss = _Tiny(l2), make(rate)
    with torch.no_grad():  # not at the zero init: a bias that matters
        for p in loss.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model, loss


def _distributed_case(name: str, rate: float, rank: int) -> dict:
    model, loss = _build(name, rate)
    for shard in setup_class_shards(loss, SEED, True, rank, WORLD):
        shard.iteration = ITERATION
    net = wrap_for_ranks(ModelAndLoss(model, loss), torch.device("cpu"), WORLD, False)
    x, labels = _inputs()
    own = rank_rows(B, rank, WORLD)
    _, out = net(x[own], labels[own])
    out.total.backward()
    correct = out.correct.clone()
    dist.all_reduce(correct)
    sizes = [b - a for a, b in (shard_bounds(C, r, WORLD) for r in range(WORLD))]
    classes = {n: pad_gather_rows(p.grad, sizes) for n, p in loss.named_parameters() if hasattr(p, "class_shard")}
    replicated = {n: p.grad.clone() for n, p in loss.named_parameters() if not hasattr(p, "class_shard")}
    return {"loss": out.total.detach(), "backbone": [p.grad.clone() for p in model.parameters()],
            "classes": classes, "replicated": replicated, "correct": correct,
            "buffers": {n: b.clone() for n, b in loss.named_buffers()}}


def _center_and_ring(rank: int) -> dict:
    torch.manual_seed(0)
    center, ring = CenterLoss(D, C), RingLoss()
    center.centers.normal_()
    features = torch.randn(B, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    own = rank_rows(B, rank, WORLD)
    center(features[own], torch.tensor(LABELS)[own])
    ring(features[own])
    return {"centers": center.centers.clone(), "radius": ring.radius.detach().clone()}


SAVE_ROWS = 3  # the save's chunk in rows (7 + 6 rows: several chunks per rank, a short last one)


def _trained_softmax(rank: int | None) -> tuple[SoftmaxLoss, torch.optim.Optimizer]:
    """A softmax classifier after one SGD step on a gradient known per class (row i: i + 1), built whole
    (rank None) or as rank `rank`'s block of 2; its momentum then holds that gradient."""
    torch.manual_seed(0)
    with building_rows(rank, WORLD) if rank is not None else contextlib.nullcontext():
        loss = SoftmaxLoss(D, C)
    if rank is not None:
        setup_class_shards(loss, SEED, True, rank, WORLD)
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.1, momentum=0.9)
    start = shard_bounds(C, rank, WORLD)[0] if rank is not None else 0
    for p in loss.parameters():
        rows = torch.arange(start, start + p.shape[0], dtype=p.dtype) + 1
        p.grad = rows.view(-1, *[1] * (p.dim() - 1)).expand_as(p).clone()
    optimizer.step()
    return loss, optimizer


def _save_and_resume(rank: int, out_dir: str) -> dict:
    """Rank 0 assembles the checkpoint chunk by chunk and writes it; each rank maps it and takes its rows."""
    sharded_state.CHUNK_BYTES = SAVE_ROWS * D * 8
    loss, optimizer = _trained_softmax(rank)
    saved = {"model": {"loss": loss.state_dict()}, "optimizer": optimizer.state_dict()}
    saved = gather_checkpoint(saved, {"loss": loss}, optimizer)
    path = os.path.join(out_dir, "sharded_last.pt")
    if rank == 0:
        torch.save(saved, path)
    dist.barrier()
    back = localize_checkpoint(load_checkpoint(path, mmap=True), {"loss": loss}, optimizer)
    own = {"model": loss.state_dict(), "optimizer": optimizer.state_dict()["state"]}
    return {"sent": saved, "back": {"model": back["model"]["loss"], "optimizer": back["optimizer"]["state"]},
            "own": own}


def _worker(rank: int, port: int, out_dir: str) -> None:
    # a forked child must not enter the OpenMP pool its parent already started (it hangs): one thread
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        results = {f"{name}@{rate}": _distributed_case(name, rate, rank) for name, rate in CASES}
        results["center_ring"] = _center_and_ring(rank)
        results["save"] = _save_and_resume(rank, out_dir)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _reference(name: str, rate: float) -> dict:
    """One process, the full classifier, by hand: logits over all C classes (the margin at the target),
    restricted to the sampled classes when sampling, then torch's cross-entropy."""
    model, loss = _build(name, 1.0)
    if hasattr(loss, "classes"):  # the ranks' (seed, iteration): ElasticFace draws its margins from them
        loss.classes.seed, loss.classes.iteration = SEED, ITERATION
    x, labels = _inputs()
    _, f = model(x)
    if isinstance(loss, AgentLoss):  # the unsharded loss, checked against hand computation elsewhere
        out = loss(f, labels)
        out.total.backward()
        return _grads(model, loss, out.total, out.correct, torch.arange(C))
    if isinstance(loss, SoftmaxLoss):
        logits = f @ loss.classifier.weight.T + loss.classifier.bias
        decision = logits
    else:
        cos = loss.class_similarities(f, loss.weight)
        logits, decision = loss.margin_logits(cos, f, labels), loss.logit_scale(f) * cos
    used = torch.arange(C)
    if rate < 1:
        shard = ClassShard(C, rate)
        shard.seed, shard.iteration = SEED, ITERATION
        used = shard.sampled_classes(labels)
    target = torch.searchsorted(used, labels)
    value = F.cross_entropy(logits[:, used], target)
    value.backward()
    return _grads(model, loss, value, (decision[:, used].argmax(dim=1) == target).sum(), used)


def _grads(model, loss, value, correct, used) -> dict:
    return {"loss": value.detach(), "backbone": [p.grad for p in model.parameters()], "correct": correct,
            "classes": {n: p.grad for n, p in loss.named_parameters() if p.shape[:1] == (C,)},
            "replicated": {n: p.grad for n, p in loss.named_parameters() if p.shape[:1] != (C,)}, "used": used,
            "buffers": dict(loss.named_buffers())}


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Every case's results from 2 gloo processes (rank 0's file: the loss and gradients are the same on both)."""
    return fork_gloo_ranks(_worker, WORLD, tmp_path_factory.mktemp("ranks"))


@pytest.mark.parametrize(("name", "rate"), CASES)
def test_two_ranks_give_one_process_loss_and_gradients(two_ranks, float64, name, rate):
    ref = _reference(name, rate)
    for got in (r[f"{name}@{rate}"] for r in two_ranks):
        close = {"rtol": 1e-10, "atol": 1e-12}
        torch.testing.assert_close(got["loss"], ref["loss"], **close)
        for a, b in zip(got["backbone"], ref["backbone"], strict=True):  # DDP-averaged, as the trainer steps
            torch.testing.assert_close(a, b, **close)
        assert got["classes"].keys() == ref["classes"].keys() and got["classes"]
        for key in ref["classes"]:  # the ranks' blocks put together: the full classifier's gradient
            torch.testing.assert_close(got["classes"][key], ref["classes"][key], **close)
        for key in ref["replicated"]:  # a learned scale: the sum of the blocks' parts
            torch.testing.assert_close(got["replicated"][key], ref["replicated"][key], **close)
        for key in ref["buffers"]:  # the agents' distortion bound: from the global batch
            torch.testing.assert_close(got["buffers"][key], ref["buffers"][key], **close)
        assert int(got["correct"]) == int(ref["correct"])
    grad = two_ranks[0][f"{name}@{rate}"]["classes"]
    unused = torch.ones(C, dtype=torch.bool)
    unused[ref["used"]] = False
    assert all(not g[unused].any() for g in grad.values())  # rows left out of the sample get no gradient
    if rate < 1:
        assert unused.any() and set(LABELS) <= set(ref["used"].tolist())
        assert len(ref["used"]) == math.ceil(rate * C)


def test_center_updates_and_ring_radius_are_global(two_ranks, float64):
    torch.manual_seed(0)
    center, ring = CenterLoss(D, C), RingLoss()
    center.centers.normal_()
    features = torch.randn(B, D, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    center(features, torch.tensor(LABELS))
    ring(features)
    for got in (r["center_ring"] for r in two_ranks):
        torch.testing.assert_close(got["centers"], center.centers, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(got["radius"], ring.radius.detach(), rtol=1e-12, atol=1e-12)


def test_blocks_cover_the_classes_once():
    for classes, world in ((13, 2), (10, 3), (2, 4)):
        bounds = [shard_bounds(classes, r, world) for r in range(world)]
        assert bounds[0][0] == 0 and bounds[-1][1] == classes
        assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:], strict=False))
        assert max(b - a for a, b in bounds) - min(b - a for a, b in bounds) <= 1


def test_a_bad_sample_rate_is_refused():
    with pytest.raises(FacetrainError, match=r"loss.sample_rate=0 must be in \(0, 1\]"):
        SoftmaxLoss(D, C, sample_rate=0)


def test_sharding_a_loss_without_class_weights_is_refused():
    from facetrain.losses import TripletLoss

    with pytest.raises(FacetrainError, match="shard_classifier=true but TripletLoss has no class weights"):
        setup_class_shards(TripletLoss(), 0, True, 0, 2)
    assert setup_class_shards(TripletLoss(), 0, True, 0, 1) == []  # one process: nothing to shard, nothing said


@pytest.mark.parametrize("block", [4, 5, 64])  # 4, 5: sampling blocks straddle the ranks' blocks (7 + 6, 5 + 4 + 4)
def test_each_rank_draws_its_own_classes_and_the_set_ignores_the_world_size(block):
    """The classes the ranks' `select` keep, put together, are one process's, at world size 1, 2 and 3."""
    labels = torch.tensor(LABELS)

    def used(world: int) -> list[int]:
        kept = []
        for r in range(world):
            shard = ClassShard(C, 0.5)
            shard.sample_block, shard.seed, shard.iteration = block, SEED, ITERATION
            shard.start, shard.stop = shard_bounds(C, r, world)
            shard.world_size = world
            rows, target = shard.select(labels)
            inside = (labels >= shard.start) & (labels < shard.stop)
            assert torch.equal(rows[target[inside]] + shard.start, labels[inside])  # each label at its column
            assert bool((target[~inside] == -1).all())
            kept += (rows + shard.start).tolist()
        return kept

    one = used(1)
    assert one == used(2) == used(3) and set(LABELS) <= set(one)
    sizes = [min(block, C - start) for start in range(0, C, block)]
    assert len(one) >= sum(math.ceil(0.5 * n) for n in sizes)  # each block's quota (more where positives crowd it)
    reference = ClassShard(C, 0.5)
    reference.sample_block, reference.seed, reference.iteration = block, SEED, ITERATION
    assert reference.sampled_classes(labels).tolist() == one


def test_rank_0_writes_the_whole_classifier_and_each_rank_reads_back_its_rows(two_ranks, float64):
    """The save: rank 0 receives the other rank's rows in chunks of SAVE_ROWS and holds the full weights and
    momentum of one process; rank 1 keeps its block (it writes nothing). The resume: each rank's rows again."""
    whole, optimizer = _trained_softmax(None)
    momentum = {i: s["momentum_buffer"] for i, s in optimizer.state_dict()["state"].items()}
    sent = two_ranks[0]["save"]["sent"]
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(sent["model"]["loss"][key], value, rtol=0, atol=0)
    for index, value in momentum.items():
        torch.testing.assert_close(sent["optimizer"]["state"][index]["momentum_buffer"], value, rtol=0, atol=0)
        assert value[-1].flatten()[0] == C  # row C - 1's known gradient: every row came back in place
    assert two_ranks[1]["save"]["sent"]["model"]["loss"]["classifier.weight"].shape == (6, D)
    for r, got in enumerate(two_ranks):
        start, stop = shard_bounds(C, r, WORLD)
        for key, value in got["save"]["own"]["model"].items():
            torch.testing.assert_close(got["save"]["back"]["model"][key], value, rtol=0, atol=0)
            torch.testing.assert_close(value, whole.state_dict()[key][start:stop], rtol=0, atol=0)
        for index, state in got["save"]["own"]["optimizer"].items():
            torch.testing.assert_close(got["save"]["back"]["optimizer"][index]["momentum_buffer"],
                                       state["momentum_buffer"], rtol=0, atol=0)


@pytest.mark.parametrize("make", [lambda: ArcFaceLoss(D, C), lambda: SoftmaxLoss(D, C), lambda: CTripletLoss(D, C)],
                         ids=["arcface", "softmax", "c_triplet"])
def test_a_rank_draws_only_its_rows_of_the_one_process_draw(make, monkeypatch):
    """Blocks of 4 rows, so ranks start inside a block; worlds of 2 and 3 (uneven). The rows equal the whole
    draw's, the global generator ends where it does, and `place` keeps the rows without copying them."""
    monkeypatch.setattr(class_rows, "BLOCK_ROWS", 4)
    torch.manual_seed(0)
    whole, after = make().state_dict(), torch.rand(3)
    for world in (2, 3):
        for r in range(world):
            torch.manual_seed(0)
            with building_rows(r, world):
                loss = make()
            assert torch.equal(torch.rand(3), after)
            start, stop = shard_bounds(C, r, world)
            pointers = {n: p.data_ptr() for n, p in loss.named_parameters()}
            setup_class_shards(loss, SEED, True, r, world)
            sharded = [n for n, p in loss.named_parameters() if hasattr(p, "class_shard")]
            assert sharded and all(dict(loss.named_parameters())[n].data_ptr() == pointers[n] for n in sharded)
            for key, value in loss.state_dict().items():
                expected = whole[key][start:stop] if key in sharded else whole[key]
                torch.testing.assert_close(value, expected, rtol=0, atol=0, equal_nan=True, msg=f"{key} {r}/{world}")
