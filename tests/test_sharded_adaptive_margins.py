"""AdaFace, MagFace and CurricularFace over 2 gloo processes give one process's losses, gradients and running
statistics: with the classifier sharded (each rank sees the whole gathered batch, its block of classes), with
class sampling on top, and data parallel (each rank its own rows: the statistics are reduced over the ranks).

Two batches in a row, so the second uses the running statistics the first left. float64: equal to round-off.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
from helpers import fork_gloo_ranks
from torch import nn

from facetrain.distributed.rank import rank_rows
from facetrain.losses import AdaFaceLoss, CurricularFaceLoss, MagFaceLoss
from facetrain.sharded.shards import shard_bounds
from facetrain.sharded.state import setup_class_shards
from facetrain.train.model_and_loss import ModelAndLoss, wrap_for_ranks

B, IN, D, C, WORLD = 8, 6, 4, 13, 2
LABELS = [[0, 3, 3, 7, 12, 7, 5, 0], [1, 12, 6, 6, 2, 9, 0, 11]]
SEED, ITERATION = 5, 3
# s = 8 keeps the softmax away from one-hot, so every class's gradient counts; the rest at the defaults
LOSSES = {
    "adaface": lambda rate: AdaFaceLoss(D, C, scale=8.0, t_alpha=0.5, sample_rate=rate),
    "magface": lambda rate: MagFaceLoss(D, C, scale=8.0, sample_rate=rate),
    "curricularface": lambda rate: CurricularFaceLoss(D, C, scale=8.0, momentum=0.5, sample_rate=rate),
}
CASES = [(name, rate, shard) for name in LOSSES for rate, shard in ((1.0, True), (0.5, True), (1.0, False))]


class _Tiny(nn.Module):
    """(embedding, feature) from one linear layer, the identity head: norms spread over 5 .. 60."""

    def __init__(self):
        super().__init__()
        self.backbone, self.head = nn.Linear(IN, D), nn.Identity()

    def forward(self, x):
        e = self.backbone(x)
        return e, e


def _batch(step: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(11 + step)
    x = torch.randn(B, IN, generator=g, dtype=torch.float64) * torch.linspace(5, 40, B).view(-1, 1)
    return x, torch.tensor(LABELS[step])


def _build(name: str, rate: float):
    torch.manual_seed(0)
    return _Tiny(), LOSSES[name](rate)


def _run(name: str, rate: float, shard: bool, rank: int | None) -> dict:
    """Two batches forward and backward (gradients accumulate): one process (rank None) or this rank of 2."""
    model, loss = _build(name, rate)
    shards = setup_class_shards(loss, SEED, shard, rank or 0, WORLD if rank is not None else 1)
    for s in shards:
        s.iteration = ITERATION
    net = ModelAndLoss(model, loss)
    if rank is not None:
        net = wrap_for_ranks(net, torch.device("cpu"), WORLD, False)
    values = []
    for step in (0, 1):
        x, labels = _batch(step)
        own = rank_rows(B, rank, WORLD) if rank is not None else slice(None)
        _, out = net(x[own], labels[own])
        out.total.backward()
        value = out.total.detach().clone()
        if rank is not None and not shard:  # data parallel: each rank's loss is its rows' mean
            dist.all_reduce(value)
            value /= WORLD
        values.append(value)
    weight = loss.weight.grad
    if rank is not None and shard:
        parts = [torch.zeros(C, D) for _ in range(WORLD)]
        padded = torch.zeros(C, D)
        padded[:weight.shape[0]] = weight
        dist.all_gather(parts, padded)
        sizes = [b - a for a, b in (shard_bounds(C, r, WORLD) for r in range(WORLD))]
        weight = torch.cat([p[:n] for p, n in zip(parts, sizes, strict=True)])
    return {"loss": torch.stack(values), "backbone": [p.grad.clone() for p in model.parameters()],
            "weight": weight.clone(), "buffers": {n: b.clone() for n, b in loss.named_buffers()}}


def _worker(rank: int, port: int, out_dir: str) -> None:
    torch.set_num_threads(1)  # a forked child must not enter its parent's OpenMP pool
    torch.set_default_dtype(torch.float64)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    try:
        results = {f"{n}@{r}@{s}": _run(n, r, s, rank) for n, r, s in CASES}
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return fork_gloo_ranks(_worker, WORLD, tmp_path_factory.mktemp("ranks"))


@pytest.mark.parametrize(("name", "rate", "shard"), CASES)
def test_two_ranks_give_one_process_losses_gradients_and_statistics(two_ranks, float64, name, rate, shard):
    ref = _run(name, rate, shard, None)
    close = {"rtol": 1e-10, "atol": 1e-12}
    for got in (r[f"{name}@{rate}@{shard}"] for r in two_ranks):
        torch.testing.assert_close(got["loss"], ref["loss"], **close)
        for a, b in zip(got["backbone"], ref["backbone"], strict=True):
            torch.testing.assert_close(a, b, **close)
        torch.testing.assert_close(got["weight"], ref["weight"], **close)
        assert got["buffers"].keys() == ref["buffers"].keys()
        for key in ref["buffers"]:  # the running statistics: the global batch's, the same on every rank
            torch.testing.assert_close(got["buffers"][key], ref["buffers"][key], **close)
    if name != "magface":  # the statistics moved from their starting values
        start = _build(name, rate)[1]
        assert any(not torch.equal(b, ref["buffers"][n]) for n, b in start.named_buffers() if n != "scale")
