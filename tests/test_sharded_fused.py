"""fused_class_update: the class weights' SGD step recomputed chunk by chunk equals autograd + torch's SGD.

The class weights (and the loss) run in float64, the backbone in fp32 as train_step feeds it, so "equal"
is 1e-12 for the class weights and exact for the backbone (its gradient does not change).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from helpers import compose_config, fork_gloo_ranks

from facetrain.errors import FacetrainError
from facetrain.losses import ArcFaceLoss
from facetrain.sharded import chunked
from facetrain.sharded.fused import fuse_class_updates, holder_of
from facetrain.train import build_state, train_step
from facetrain.train.resume import resume

C, D, BATCH, WORLD = 23, 8, 6, 2
CHUNK = {"cpu": 4 * D * 8}  # 4 float64 rows of D: several chunks for 23 classes (12 or 11 per rank)


def _cfg(run_dir: Path, fused: bool, *extra: str):
    return compose_config("train", [
        "backbone=lenet_pp", "backbone.in_channels=3", "backbone.channels=[4,8,8]", "input_size=[28,28]",
        f"embedding_dim={D}", "loss=arcface", f"batch_size={BATCH}", "device=cpu", "precision=fp32",
        "warmup.iterations=0", "optim.lr=0.5", "optim.weight_decay=0.01", f"fused_class_update={fused}",
        f"run_dir={run_dir}", *extra])


def _state(cfg):
    state = build_state(cfg, C, torch.device("cpu"), Path(cfg.run_dir))
    state.loss.double()  # the same Parameter objects: the optimizer, the shard and fused marks stay
    state.loss.register_forward_pre_hook(lambda _, args: (args[0].double(), *args[1:]))  # float64 features
    return state


def _batches(steps: int, rank: int = 0, world: int = 1):
    g = torch.Generator().manual_seed(7)
    for _ in range(steps):
        images = torch.randint(0, 256, (BATCH, 3, 28, 28), dtype=torch.uint8, generator=g)
        labels = torch.randint(0, C, (BATCH,), generator=g)
        rows = slice(rank * BATCH // world, (rank + 1) * BATCH // world)
        yield images[rows], labels[rows]


def _train(state, batches) -> dict:
    for images, labels in batches:
        train_step(state, images, labels)
    weights = {name: p.detach().clone() for name, p in state.loss.named_parameters()}
    momentum = {name: state.optimizer.state[p]["momentum_buffer"].clone() for name, p in state.loss.named_parameters()}
    backbone = {name: p.detach().clone() for name, p in state.model.named_parameters()}
    return {"weights": weights, "momentum": momentum, "backbone": backbone, "skipped": state.skipped_steps,
            "marked": any(holder_of(p) is not None for p in state.loss.parameters())}


def _same(a: dict, b: dict, tol: float = 1e-12) -> None:
    for part in ("weights", "momentum"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            torch.testing.assert_close(a[part][name], b[part][name], rtol=tol, atol=tol)
    for name in a["backbone"]:
        torch.testing.assert_close(a["backbone"][name], b["backbone"][name], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("loss", ["arcface", "softmax"])
@pytest.mark.parametrize("clip", ["0.5", "null"])
def test_one_process_fused_steps_equal_autograd_and_sgd(tmp_path, monkeypatch, loss, clip):
    """Class sampling (the block path on one process), several chunks, weight decay, clipping on and off."""
    monkeypatch.setattr(chunked, "CHUNK_BYTES", CHUNK)
    extra = [f"loss={loss}", "loss.sample_rate=0.5", f"clip_grad_norm={clip}"]
    plain = _train(_state(_cfg(tmp_path / "a", False, *extra)), _batches(3))
    state = _state(_cfg(tmp_path / "b", True, *extra))
    held = []  # whether the class weights hold a gradient each time the backward reaches them
    for p in state.loss.parameters():
        assert holder_of(p) is not None
        p.register_post_accumulate_grad_hook(lambda p: held.append(p.grad is not None))
    fused = _train(state, _batches(3))
    assert held and not any(held)
    _same(plain, fused)


@pytest.mark.parametrize("sgd", [["+optim.nesterov=true"], ["+optim.dampening=0.3"], ["optim.momentum=0"]],
                         ids=["nesterov", "dampening", "no_momentum"])
def test_sgds_other_settings_step_as_torch(tmp_path, monkeypatch, sgd):
    monkeypatch.setattr(chunked, "CHUNK_BYTES", CHUNK)
    extra = ["loss.sample_rate=0.5", "clip_grad_norm=0.5", *sgd]
    plain, fused = (_state(_cfg(tmp_path / name, name == "b", *extra)) for name in "ab")
    plain_params, fused_params = list(plain.loss.parameters()), list(fused.loss.parameters())
    for images, labels in _batches(3):
        train_step(plain, images, labels)
        train_step(fused, images, labels)
    for a, b in zip(plain_params, fused_params, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        assert plain.optimizer.state[a].keys() == fused.optimizer.state[b].keys()  # no momentum: no state
        for key, value in plain.optimizer.state[a].items():
            torch.testing.assert_close(value, fused.optimizer.state[b][key], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fp32_and_bf16_fused_steps_equal_autograd_to_rounding(tmp_path, monkeypatch, precision):
    """The recomputed chunks run the forward's ops (bf16: the classifier's matmul under its own autocast)."""
    monkeypatch.setattr(chunked, "CHUNK_BYTES", {"cpu": 4 * D * 4})
    extra = ["loss.sample_rate=0.5", "clip_grad_norm=0.5", f"precision={precision}"]
    plain = build_state(_cfg(tmp_path / "a", False, *extra), C, torch.device("cpu"), tmp_path / "a")
    fused = build_state(_cfg(tmp_path / "b", True, *extra), C, torch.device("cpu"), tmp_path / "b")
    assert fused.precision == precision and fused.loss.matmul_dtype == (torch.bfloat16 if precision == "bf16" else None)
    _same(_train(plain, _batches(3)), _train(fused, _batches(3)), tol=1e-5)


def test_a_non_finite_step_leaves_the_class_weights_and_momentum_untouched(tmp_path):
    state = _state(_cfg(tmp_path, True, "loss.sample_rate=0.5"))
    before = _train(state, _batches(1))
    state.loss.scale.fill_(float("inf"))  # every logit infinite: the gradient is not finite
    after = _train(state, _batches(1))
    assert after["skipped"] == 1
    for part in ("weights", "momentum"):
        for name, value in before[part].items():
            assert torch.equal(after[part][name], value)
    assert holder_of(state.loss.weight).pending is None


def test_unsupported_settings_are_refused():
    loss = ArcFaceLoss(D, C)
    with pytest.raises(FacetrainError, match="applies torch SGD's update, not Adam's"):
        fuse_class_updates(loss, torch.optim.Adam(loss.parameters()), "fp32", 1)
    with pytest.raises(FacetrainError, match="does not support precision=fp16"):
        fuse_class_updates(loss, torch.optim.SGD(loss.parameters(), lr=0.1), "fp16", 1)
    with pytest.raises(FacetrainError, match="needs shard_classifier=true under torchrun"):
        fuse_class_updates(loss, torch.optim.SGD(loss.parameters(), lr=0.1), "fp32", 2)


def _worker(rank: int, port: int, out: str, cfgs: dict) -> None:
    torch.set_num_threads(1)  # a forked child must not enter its parent's OpenMP pool
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank))
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=WORLD)
    chunked.CHUNK_BYTES = CHUNK
    try:
        results = {}
        for name, (plain_cfg, fused_cfg) in cfgs.items():
            results[name] = {"plain": _train(_state(plain_cfg), _batches(3, rank, WORLD)),
                             "fused": _train(_state(fused_cfg), _batches(3, rank, WORLD))}
        cfg = cfgs["sampled"][1]  # save after two fused steps, resume a fresh state, take the third
        batches = list(_batches(3, rank, WORLD))
        first = _state(cfg)
        _train(first, batches[:2])
        first.save(first.checkpoint)
        fresh = _state(cfg)
        resume(fresh, True)
        results["resumed"] = _train(fresh, batches[2:])
        torch.save(results, os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    base = tmp_path_factory.mktemp("fused")
    cases = {"all": ["clip_grad_norm=0.5"], "sampled": ["loss.sample_rate=0.5", "clip_grad_norm=0.5"],
             "unclipped": ["clip_grad_norm=null"]}
    cfgs = {name: tuple(_cfg(base / f"{name}_{fused}", fused, "shard_classifier=true", *extra)
                        for fused in (False, True)) for name, extra in cases.items()}

    def worker(rank, port, out):
        _worker(rank, port, out, cfgs)

    return fork_gloo_ranks(worker, WORLD, base)


@pytest.mark.parametrize("case", ["all", "sampled", "unclipped"])
def test_two_ranks_fused_steps_equal_autograd_and_sgd(two_ranks, case):
    for got in two_ranks:
        assert got[case]["fused"]["weights"]["weight"].shape[0] in (12, 11)  # each rank its block
        assert got[case]["fused"]["marked"] and not got[case]["plain"]["marked"]
        _same(got[case]["plain"], got[case]["fused"])


def test_two_ranks_save_and_resume_continue_identically(two_ranks):
    for got in two_ranks:
        _same(got["sampled"]["fused"], got["resumed"], tol=0)
