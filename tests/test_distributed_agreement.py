"""Decisions the ranks must take alike, or the next collective waits forever (a hang under NCCL, not an error):
validation's best.pt, the fp16 loss scale, the sharded gradient norm's all-reduce.

One fork of 2 gloo ranks checks the helpers for real; the validation hook's side is checked in one process
pretending to be rank 1.
"""

from __future__ import annotations

import functools
import os
import time

import pytest
import torch
import torch.distributed as dist
from helpers import fork_gloo_ranks, gloo_rank
from torch import nn

from facetrain.distributed import process_group
from facetrain.distributed.process_group import from_main, main_first
from facetrain.errors import FacetrainError
from facetrain.sharded.shards import ClassShard
from facetrain.sharded.state import global_grad_norm
from facetrain.train.hooks.validation import ValidationHook
from facetrain.train.precision import ResumableGradScaler

WORLD = 2


def _scale_after_overflow(rank: int) -> float:
    """fp16's scaler after a step in which only rank 1's gradient overflowed (as in one rank's classifier block)."""
    scaler = ResumableGradScaler("cpu", init_scale=8.0)
    p = nn.Parameter(torch.ones(2))
    optimizer = torch.optim.SGD([p], lr=1.0)
    factor = torch.tensor([float("inf") if rank == 1 else 1.0, 1.0])
    scaler.scale((p * factor).sum()).backward()
    scaler.unscale_(optimizer)
    scaler.update()
    return scaler.get_scale()


def _norm_with_a_gradless_block(rank: int) -> float:
    """global_grad_norm when rank 1's block got no gradient: rank 0's block [3, 4], a replicated [0, 12]."""
    block = nn.Parameter(torch.zeros(2))
    block.class_shard = ClassShard(4)
    block.grad = torch.tensor([3.0, 4.0]) if rank == 0 else None
    replicated = nn.Parameter(torch.zeros(2))
    replicated.grad = torch.tensor([0.0, 12.0])
    return float(global_grad_norm([block, replicated]))


def _worker(rank: int, port: int, out_dir: str) -> None:
    with gloo_rank(rank, port, WORLD):
        results = {"from_main": from_main({"rank": rank}), "scale": _scale_after_overflow(rank),
                   "norm": _norm_with_a_gradless_block(rank)}
        dist.barrier()
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    return fork_gloo_ranks(_worker, WORLD, tmp_path_factory.mktemp("ranks"))


def test_every_rank_takes_rank_0s_value(two_ranks):
    assert [r["from_main"] for r in two_ranks] == [{"rank": 0}, {"rank": 0}]


def test_an_overflow_on_one_rank_backs_off_every_ranks_loss_scale(two_ranks):
    assert [r["scale"] for r in two_ranks] == [4.0, 4.0]  # without the agreement: 8.0 on rank 0, 4.0 on rank 1


def test_a_rank_whose_block_has_no_gradient_still_joins_the_norms_all_reduce(two_ranks):
    assert [r["norm"] for r in two_ranks] == [13.0, 13.0]  # sqrt(3^2 + 4^2 + 12^2)


class _Saves:
    """The TrainState surface validation uses; `save` records what it was asked to write."""

    def __init__(self, run_dir):
        self.model = nn.Sequential()
        self.model.backbone = nn.Identity()
        self.device, self.iteration, self.run_dir = torch.device("cpu"), 2, run_dir
        self.pending_scalars, self.saved = {}, []

    def save(self, path, extra=None):
        self.saved.append((path.name, extra))


def _as_rank_1(monkeypatch, rank_0_sends):
    """This process is rank 1 of 2: it must not score, and takes what rank 0 sends (`rank_0_sends()`)."""
    monkeypatch.setattr(process_group, "is_main_process", lambda: False)
    monkeypatch.setattr(process_group, "from_main", lambda value, group=None: rank_0_sends())
    monkeypatch.setattr(ValidationHook, "_score", lambda *a: pytest.fail("rank 1 scored on its own"))


def test_with_a_sharded_classifier_rank_1_takes_rank_0s_scores_and_saves_with_it(train_cfg, monkeypatch, tmp_path):
    cfg = train_cfg("val.every=2")
    hook = ValidationHook(cfg.val, cfg.data, 4, all_ranks=True)
    state = _Saves(tmp_path)
    sent = iter([({"lfw/acc_mean": 0.75}, None), ({"lfw/acc_mean": 0.5}, None)])
    _as_rank_1(monkeypatch, lambda: next(sent))
    assert hook.validate(state)["val/lfw/acc_mean"] == 0.75
    assert state.saved == [("best.pt", {"val_best": {"metric": "lfw/acc_mean", "value": 0.75}})]
    state.iteration = 4
    hook.validate(state)  # rank 0 found no improvement: rank 1 does not save either (the gather would hang)
    assert len(state.saved) == 1 and state.pending_scalars["val/best/lfw/acc_mean"] == 0.75
    _as_rank_1(monkeypatch, lambda: (None, "val.pairs=x does not exist; ..."))
    with pytest.raises(FacetrainError, match="val.pairs=x does not exist"):  # rank 0's user error, here too
        hook.validate(state)


def _prepare_on_rank_0(rank: int, port: int, out_dir: str, group_seconds: float, work_seconds: float) -> None:
    """main_first twice: rank 0 works `work_seconds` (the group gives up after `group_seconds`), then fails."""
    with gloo_rank(rank, port, WORLD, timeout_s=group_seconds):
        done = main_first(lambda: time.sleep(work_seconds) or "the index")
        try:
            main_first(lambda: (_ for _ in ()).throw(FacetrainError("data.root=/nowhere does not exist")))
            failed = None
        except FacetrainError as err:
            failed = str(err)
        torch.save({"done": done, "failed": failed}, os.path.join(out_dir, f"rank{rank}.pt"))


def test_rank_0s_data_error_ends_every_rank_with_its_line(tmp_path):
    ranks = fork_gloo_ranks(functools.partial(_prepare_on_rank_0, group_seconds=30, work_seconds=0), WORLD, tmp_path)
    assert [r["done"] for r in ranks] == ["the index", None]  # its result on rank 0 only: the others load their own
    assert [r["failed"] for r in ranks] == ["data.root=/nowhere does not exist"] * 2


@pytest.mark.slow
def test_the_other_ranks_wait_for_rank_0_past_the_process_groups_timeout(tmp_path):
    """Indexing millions of images can outlast the group's 30 minutes: here 4 s of work against 2 s."""
    ranks = fork_gloo_ranks(functools.partial(_prepare_on_rank_0, group_seconds=2, work_seconds=4), WORLD, tmp_path)
    assert [r["done"] for r in ranks] == ["the index", None]
