"""Data-parallel training under torchrun (CPU, gloo): N ranks x batch/N take the step 1 process x batch takes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import compose_config, run_cli, run_cli_process, tiny_train_overrides

from facetrain.data import IterationBatchSampler, PKBatchSampler, RankShare, random_hflip
from facetrain.distributed.rank import rank_rows
from facetrain.errors import FacetrainError
from facetrain.run.device import pick_device
from facetrain.train import train, trainer

# No BatchNorm (LeNet++): per-rank batch statistics would differ from the full batch's, and torch's
# SyncBatchNorm has no CPU kernel. Mirroring stays on: each rank must mirror its rows as one process would.
# optim.lr=0.01: the sums of two half batches round differently from one batch's (1e-8); at the default 0.1
# four steps of this tiny model amplify that to 1e-5, at 0.01 it stays at round-off.
EXACT = ["backbone=lenet_pp", "embedding_dim=2", "input_size=[28,28]", "backbone.in_channels=3", "warmup.iterations=0",
         "schedule.milestones=[3]", "optim.lr=0.01"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _overrides(data_root: Path, run_dir: Path | None, *extra: str) -> list[str]:
    """The tiny test overrides (without the small CNN's channels); run_dir=None leaves it to Hydra."""
    base = [o for o in tiny_train_overrides(data_root, run_dir or Path("."))
            if not o.startswith("backbone.channels") and (run_dir or not o.startswith("run_dir="))]
    return base + EXACT + list(extra)


def torchrun(*args: str, nproc: int = 2, cwd: Path, launcher: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """`torchrun --nproc_per_node=N -m facetrain.cli train ARGS` on a free port; fails the test on failure.

    A port found free can be taken by another process before torchrun binds it: that launch, and only that
    kind of failure, is retried once on a new port."""
    for attempt in range(2):
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
               *(launcher or (f"--master_port={_free_port()}",)), "-m", "facetrain.cli", "train", *args]
        proc = subprocess.run(cmd, cwd=cwd, env=os.environ | {"PYTHONUNBUFFERED": "1"}, capture_output=True,
                              text=True, timeout=300)
        if proc.returncode == 0 or launcher or attempt or not _port_taken(proc.stderr):
            break
    if proc.returncode != 0:
        raise AssertionError(f"torchrun failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _port_taken(stderr: str) -> bool:
    return any(s in stderr for s in ("Address already in use", "EADDRINUSE", "address already in use"))


def _weights(run_dir: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    return state, {f"{part}.{k}": v for part, sd in state["model"].items() for k, v in sd.items()}


def _compose(overrides: list[str]):
    return compose_config("train", overrides)


def assert_same_weights(a: Path, b: Path, iteration: int) -> None:
    (state_a, wa), (state_b, wb) = _weights(a), _weights(b)
    assert state_a["iteration"] == state_b["iteration"] == iteration
    assert wa.keys() == wb.keys() and not any(k.split(".", 1)[1].startswith("module.") for k in wa)
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=1e-5, atol=1e-6, msg=key)


def test_each_rank_takes_its_block_of_the_same_global_batches():
    for global_batches in (IterationBatchSampler(26, 8, seed=1), PKBatchSampler([i // 4 for i in range(24)], 8, 2)):
        full = [b for b, _ in zip(global_batches, range(5), strict=False)]
        shares = [[b for b, _ in zip(RankShare(global_batches, r, 2), range(5), strict=False)] for r in (0, 1)]
        assert [s0 + s1 for s0, s1 in zip(*shares, strict=True)] == full
    images = torch.arange(8.0 * 2).reshape(8, 1, 1, 2)
    whole = random_hflip(images, 0, 3)
    halves = [random_hflip(images[rank_rows(8, r, 2)], 0, 3, rows=rank_rows(8, r, 2), batch_size=8) for r in (0, 1)]
    assert torch.equal(torch.cat(halves), whole)


def test_a_batch_the_ranks_cannot_share_is_refused(train_cfg, monkeypatch):
    monkeypatch.setattr(trainer, "world_size", lambda: 3)
    with pytest.raises(FacetrainError, match="batch_size=8 is the global batch .* multiple of 3"):
        train(train_cfg())


def test_each_rank_drives_its_own_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("LOCAL_RANK", "1")
    assert pick_device("auto") == pick_device("cuda") == torch.device("cuda", 1)
    assert pick_device("cpu") == torch.device("cpu")
    monkeypatch.setenv("LOCAL_RANK", "2")
    with pytest.raises(FacetrainError, match="cuda:2 does not exist"):
        pick_device("auto")


@pytest.mark.parametrize("loss", ["softmax", pytest.param("l2softmax", marks=pytest.mark.slow)])  # ~25 s each
def test_two_ranks_train_the_weights_one_process_trains(loss, tiny_data, tmp_path):
    train(_compose(_overrides(tiny_data, tmp_path / "one", f"loss={loss}")))
    runs = tmp_path / "runs"
    torchrun(*_overrides(tiny_data, None, f"loss={loss}", f"paths.runs={runs}"), cwd=tmp_path)
    (run,) = (runs / "train").iterdir()  # every rank wrote into one directory, named by rank 0's clock
    assert_same_weights(tmp_path / "one", run, 4)
    # rank 0 alone wrote: one TensorBoard file, one checkpoint, its own Hydra record
    assert len(list((run / "tb").iterdir())) == 1
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["last.pt"]
    assert "hydra.output_subdir=null" not in (run / ".hydra" / "overrides.yaml").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train/world_size"] == 2 and metrics["train/global_batch"] == 8
    assert metrics["status"] == "completed"
    one = json.loads((tmp_path / "one" / "metrics.json").read_text())
    assert metrics["train/loss"] == pytest.approx(one["train/loss"], rel=1e-4)  # averaged over the ranks


@pytest.mark.slow
def test_a_run_resumes_at_another_world_size(tiny_data, tmp_path):
    train(_compose(_overrides(tiny_data, tmp_path / "full")))
    # 2 processes to iteration 2, then 1 process to 4
    torchrun(*_overrides(tiny_data, tmp_path / "two_then_one", "iterations=2"), cwd=tmp_path)
    train(_compose(_overrides(tiny_data, tmp_path / "two_then_one", "resume=true")))
    assert_same_weights(tmp_path / "full", tmp_path / "two_then_one", 4)
    # 1 process to iteration 2, then 2 processes to 4
    train(_compose(_overrides(tiny_data, tmp_path / "one_then_two", "iterations=2")))
    torchrun(*_overrides(tiny_data, tmp_path / "one_then_two", "resume=true"), cwd=tmp_path)
    assert_same_weights(tmp_path / "full", tmp_path / "one_then_two", 4)


@pytest.mark.slow
def test_nproc_starts_the_ranks_itself(tiny_data, tmp_path):
    train(_compose(_overrides(tiny_data, tmp_path / "one")))
    run_cli_process("train", *_overrides(tiny_data, tmp_path / "two", "nproc=2"), cwd=tmp_path)
    assert_same_weights(tmp_path / "one", tmp_path / "two", 4)
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["train/world_size"] == 2


def test_a_fixed_gpu_is_refused_where_ranks_share_a_machine(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")  # two machines of one GPU each: cuda:0 on both is right
    assert pick_device("cuda:0") == torch.device("cuda", 0)
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    with pytest.raises(FacetrainError, match="device=cuda:1 would put all 2 ranks of this machine on one GPU"):
        pick_device("cuda:1")


@pytest.mark.parametrize(("env", "launcher"), [({"SLURM_NTASKS": "4", "SLURM_NTASKS_PER_NODE": "1"}, "this SLURM step"),
                                                ({"TORCHELASTIC_RUN_ID": "none"}, "torchrun")])
def test_nproc_that_the_launcher_did_not_start_is_refused(env, launcher, tmp_path, monkeypatch):
    """`srun -N4 --ntasks-per-node=1 facetrain train nproc=8` would train on 4 GPUs, not 32."""
    for key, value in {"WORLD_SIZE": "4", "RANK": "0", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "1", **env}.items():
        monkeypatch.setenv(key, value)
    proc = run_cli("train", "nproc=8", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and f"nproc=8 asks for 8 ranks on this machine, but {launcher} already started 1 " \
        "here (4 in all)" in proc.stderr, proc.stderr


def test_a_bad_nproc_is_refused_in_one_line(tmp_path):
    proc = run_cli("train", "nproc=0", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "nproc=0 must be a positive integer" in proc.stderr


@pytest.mark.slow
def test_two_machines_of_one_rank_each(tiny_data, tmp_path):
    """`--nnodes=2`, simulated by two launchers on this machine meeting at one rendezvous endpoint."""
    train(_compose(_overrides(tiny_data, tmp_path / "one")))
    port = _free_port()
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=2", "--nproc_per_node=1",
           "--master_addr=127.0.0.1", f"--master_port={port}", "-m", "facetrain.cli", "train",
           *_overrides(tiny_data, tmp_path / "two")]
    nodes = [subprocess.Popen(cmd[:3] + [f"--node_rank={n}"] + cmd[3:], cwd=tmp_path, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True) for n in (0, 1)]
    outputs = [node.communicate(timeout=300)[0] for node in nodes]
    assert [node.returncode for node in nodes] == [0, 0], outputs
    assert_same_weights(tmp_path / "one", tmp_path / "two", 4)


SHARDED = ["loss=arcface", "loss.scale=16", "shard_classifier=true", "loss.sample_rate=0.5"]


def _full_class_weights(run: Path) -> None:
    """The checkpoint holds the whole class-weight matrix and its momentum, whatever world size wrote it."""
    state, weights = _weights(run)
    full = weights["loss.weight"].shape
    assert full[0] == 6  # the tiny data's 6 identities
    momentum = [s["momentum_buffer"].shape for s in state["optimizer"]["state"].values()]
    assert momentum.count(full) == 1


@pytest.mark.slow  # torchrun twice (~8 s); the default suite keeps the 2-rank gradient check
def test_a_sharded_run_resumes_as_one_process(tiny_data, tmp_path):
    """2 ranks with half of the ArcFace weights each (and class sampling) to iteration 2, then 1 process to 4:
    the weights one process trains in 4 iterations."""
    train(_compose(_overrides(tiny_data, tmp_path / "full", *SHARDED)))
    torchrun(*_overrides(tiny_data, tmp_path / "two_then_one", *SHARDED, "iterations=2"), cwd=tmp_path)
    _full_class_weights(tmp_path / "two_then_one")
    train(_compose(_overrides(tiny_data, tmp_path / "two_then_one", *SHARDED, "resume=true")))
    assert_same_weights(tmp_path / "full", tmp_path / "two_then_one", 4)


@pytest.mark.slow
def test_a_one_process_run_resumes_sharded(tiny_data, tmp_path):
    train(_compose(_overrides(tiny_data, tmp_path / "full", *SHARDED)))
    train(_compose(_overrides(tiny_data, tmp_path / "one_then_two", *SHARDED, "iterations=2")))
    # validation on every rank: each takes part in gathering the classifier for best.pt
    torchrun(*_overrides(tiny_data, tmp_path / "one_then_two", *SHARDED, "resume=true", "val.every=1"), cwd=tmp_path)
    _full_class_weights(tmp_path / "one_then_two")
    best = torch.load(tmp_path / "one_then_two" / "checkpoints" / "best.pt", weights_only=True)
    assert best["model"]["loss"]["weight"].shape[0] == 6 and best["iteration"] >= 3
    assert_same_weights(tmp_path / "full", tmp_path / "one_then_two", 4)


def test_pk_batches_split_between_identities_or_are_refused(tmp_path, monkeypatch, train_cfg):
    from facetrain.losses import TripletLoss
    from facetrain.train import loader

    monkeypatch.setattr(loader, "world_size", lambda: 2)
    monkeypatch.setattr(loader, "rank", lambda: 1)
    dataset = trainer._load_data(train_cfg(), tmp_path)
    loss = TripletLoss(samples_per_identity=2)
    batch = next(iter(loader.training_loader(train_cfg(), dataset, loss, 0, False).batch_sampler))
    labels = [dataset.labels[i] for i in batch]
    assert len(batch) == 4 and labels[0] == labels[1] and labels[2] == labels[3]  # rank 1: 2 whole identities
    with pytest.raises(FacetrainError, match="batch_size=6 holds 3 identities of 2 images.* multiple of 4"):
        loader.training_loader(train_cfg("batch_size=6"), dataset, loss, 0, False)
