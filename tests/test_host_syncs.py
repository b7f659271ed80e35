"""Host syncs per training step, counted on the CPU (tests/host_syncs.py says which entry points count) and
pinned, so a change cannot add one silently. The stop-flag all-reduce lives in a hook, outside the step."""

from __future__ import annotations

import os
import socket
from collections import Counter

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from host_syncs import count_host_syncs

from facetrain.data.images.augment import flip_mask, random_hflip
from facetrain.distributed.rank import rank_rows
from facetrain.train import build_state, train_step

CPU = torch.device("cpu")
STEPS, CLASSES, BATCH = 3, 6, 8
FINITE_CHECK = Counter({"Tensor.__bool__": 1})  # _optimizer_step: skip a step whose gradient norm is not finite


def _batches(state, n: int = STEPS + 1):
    g = torch.Generator().manual_seed(0)
    h, w = state.model.input_size
    return [(torch.randint(0, 256, (BATCH, 3, h, w), dtype=torch.uint8, generator=g),
             torch.randint(0, CLASSES, (BATCH,), generator=g)) for _ in range(n)]


def _syncs_per_step(state, batches, rows=slice(None)) -> list[Counter]:
    """The host syncs of each step after a first (warm-up) one."""
    train_step(state, batches[0][0][rows], batches[0][1][rows], hflip=True)
    counts = []
    for images, labels in batches[1:]:
        with count_host_syncs() as counted:
            train_step(state, images[rows], labels[rows], hflip=True)
        counts.append(counted)
    return counts


def test_the_default_recipe_reads_the_host_once_per_step(train_cfg, tmp_path):
    """bf16, the replicated classifier, mirroring, clipping at 5: the finite check alone."""
    state = build_state(train_cfg("precision=bf16"), CLASSES, CPU, tmp_path)
    assert state.clip_grad_norm == 5.0
    assert _syncs_per_step(state, _batches(state)) == [FINITE_CHECK] * STEPS


def test_class_sampling_adds_one_host_read(train_cfg, tmp_path):
    """Listing the rows of the classes the draw kept (their number is random)."""
    state = build_state(train_cfg("precision=bf16", "loss=arcface", "loss.sample_rate=0.5"), CLASSES, CPU, tmp_path)
    per_step = _syncs_per_step(state, _batches(state))
    assert per_step == [FINITE_CHECK + Counter({"Tensor.nonzero": 1})] * STEPS


def _sharded_worker(rank: int, port: int, cfg, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        state = build_state(cfg, CLASSES, CPU, out_dir)
        assert state.sharded
        counts = _syncs_per_step(state, _batches(state), rank_rows(BATCH, rank, 2))
        torch.save([dict(c) for c in counts], os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_a_sharded_sampled_step_reads_the_host_at_most_twice(train_cfg, tmp_path):
    """Two gloo ranks, each holding half of ArcFace's classes and sampling half of them."""
    cfg = train_cfg("precision=bf16", "loss=arcface", "loss.sample_rate=0.5", "shard_classifier=true")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(_sharded_worker, args=(port, cfg, str(tmp_path)), nprocs=2, join=True, start_method="fork")
    for rank in range(2):
        per_step = [Counter(c) for c in torch.load(tmp_path / f"rank{rank}.pt")]
        assert per_step == [FINITE_CHECK + Counter({"Tensor.nonzero": 1})] * STEPS


def test_the_counter_sees_what_it_claims_to():
    """Each counted entry point counts once (nested calls not again); device-side work does not count."""
    x = torch.arange(6.0)
    with count_host_syncs() as counted:
        x[0].item()
        bool(x[0] > 1)
        x.unique()
        x[x > 2]
        x.to(torch.float64)  # a dtype: no copy between devices
        (x * 2).sum()
    assert counted == Counter({"Tensor.item": 1, "Tensor.__bool__": 1, "Tensor.unique": 1, "Tensor.__getitem__": 1})


def test_the_mirroring_mask_still_follows_seed_and_iteration():
    """Built as before (host generator seeded by (seed, iteration)), so resumed runs repeat it exactly."""
    g = torch.Generator().manual_seed(3 * 7_919 + 5)
    assert torch.equal(flip_mask(3, 5, 8), torch.rand(8, generator=g) < 0.5)
    images = torch.arange(8 * 3, dtype=torch.float32).view(8, 1, 1, 3)
    mirrored = random_hflip(images, 3, 5)
    mask = flip_mask(3, 5, 8)
    assert torch.equal(mirrored[mask], images[mask].flip(-1)) and torch.equal(mirrored[~mask], images[~mask])
    assert 0 < int(mask.sum()) < 8
