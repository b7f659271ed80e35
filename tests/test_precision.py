"""Precision and speed settings: precision=bf16|fp16|fp32|auto, where autocast ends,
channels_last, torch.compile's checkpoint keys, cuDNN autotuning. GPU paths are marked `gpu`."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import run_cli
from torch import nn

from facetrain.errors import FacetrainError
from facetrain.losses import ArcFaceLoss, SoftmaxLoss
from facetrain.train import build_state, train, train_step
from facetrain.train import precision as precision_module
from facetrain.train.build import build_parts
from facetrain.train.model_and_loss import wire_network
from facetrain.train.precision import ResumableGradScaler, resolve_precision
from facetrain.train.speed import configure_backends

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def _checkpoint(run_dir):
    return torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)


def _batch(state, n=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    h, w = state.model.input_size
    return (torch.randint(0, 256, (n, 3, h, w), dtype=torch.uint8, generator=g),
            torch.randint(0, state.num_classes, (n,), generator=g))


def test_resolve_precision(monkeypatch):
    assert resolve_precision("auto", CPU) == "fp32"
    assert resolve_precision("BF16", CPU) == "bf16"  # bf16 autocast works on CPU too
    assert resolve_precision("fp32", CUDA) == "fp32"
    monkeypatch.setattr(precision_module, "_bf16_on_gpu", lambda: True)
    assert resolve_precision("auto", CUDA) == "bf16"
    assert resolve_precision("fp16", CUDA) == "fp16"
    monkeypatch.setattr(precision_module, "_bf16_on_gpu", lambda: False)  # a V100: no native bf16
    assert resolve_precision("auto", CUDA) == "fp32"
    with pytest.raises(FacetrainError, match="precision=fp16 needs CUDA"):
        resolve_precision("fp16", CPU)
    with pytest.raises(FacetrainError, match="precision=fp8 is not one of auto, bf16, fp16, fp32"):
        resolve_precision("fp8", CPU)


def test_the_removed_amp_key_is_refused(tmp_path):
    """`amp=` gave way to `precision=`: the key is gone, so Hydra refuses the override before anything runs."""
    proc = run_cli("train", "amp=true", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "amp: no such key at the top level" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr and not (tmp_path / "runs").exists()


def test_bf16_autocast_covers_the_backbone_and_the_loss_runs_in_fp32(train_cfg, tmp_path):
    state = build_state(train_cfg("precision=bf16", "loss=arcface"), 6, CPU, tmp_path)
    seen = {}

    def note(name, dtype):  # a hook that returns None leaves the forward pass alone
        seen[name] = dtype

    state.model.backbone.register_forward_hook(lambda m, i, out: note("embedding", out.dtype))
    state.model.head.register_forward_pre_hook(lambda m, args: note("head_in", args[0].dtype))
    state.loss.register_forward_pre_hook(lambda m, args: note("loss_in", args[0].dtype))
    state.loss.register_forward_hook(lambda m, i, out: note("loss", out.total.dtype))
    stats = train_step(state, *_batch(state))
    assert seen == {"embedding": torch.bfloat16, "head_in": torch.float32, "loss_in": torch.float32,
                    "loss": torch.float32}
    assert state.loss.matmul_dtype == torch.bfloat16  # the classifier's matmul alone runs in the run's precision
    assert state.precision == "bf16" and not state.scaler.is_enabled()  # bf16 needs no loss scaling
    assert math.isfinite(float(stats["loss"]))


def test_bf16_trains_on_cpu_and_resumes(train_cfg, tmp_path):
    run = tmp_path / "bf16"
    first = train(train_cfg("precision=bf16", "iterations=4", run_dir=run))
    assert math.isfinite(first["train/loss"]) and first["train/skipped_steps"] == 0
    assert all(v.dtype == torch.float32 for v in _checkpoint(run)["model"]["backbone"].values()
               if v.is_floating_point())  # autocast leaves the master weights in fp32
    resumed = train(train_cfg("precision=bf16", "iterations=6", "resume=true", run_dir=run))
    assert _checkpoint(run)["iteration"] == 6 and math.isfinite(resumed["train/loss"])


@pytest.mark.parametrize("make", [lambda rate: SoftmaxLoss(64, 200, sample_rate=rate),
                                  lambda rate: ArcFaceLoss(64, 200, sample_rate=rate)], ids=["softmax", "arcface"])
@pytest.mark.parametrize("rate", [1.0, 0.5], ids=["all", "sampled"])  # sampled: the block path
def test_a_bf16_classifier_matmul_stays_close_to_fp32(make, rate):
    """bf16 products, fp32 softmax statistics (CPU autocast): the loss within 1e-3 of fp32's (relative), the
    gradients of features and class weights within 3% in norm (measured: 1e-4 and 0.3-1.1%)."""
    results = []
    for dtype in (None, torch.bfloat16):
        torch.manual_seed(0)
        loss = make(rate)
        loss.matmul_dtype, loss.classes.seed, loss.classes.iteration = dtype, 1, 2
        g = torch.Generator().manual_seed(1)
        features = torch.randn(32, 64, generator=g).requires_grad_()
        out = loss(features, torch.randint(0, 200, (32,), generator=g))
        out.total.backward()
        weight = next(loss.parameters())
        assert out.total.dtype == torch.float32
        results.append((out.total.detach(), features.grad, weight.grad))
    (loss32, f32, w32), (loss16, f16, w16) = results
    assert not torch.equal(loss32, loss16)  # the bf16 path ran
    assert abs(float(loss16 - loss32)) <= 1e-3 * abs(float(loss32))
    assert float((f16 - f32).norm() / f32.norm()) < 0.03 and float((w16 - w32).norm() / w32.norm()) < 0.03


def test_an_fp16_resume_of_a_bf16_checkpoint_starts_a_fresh_loss_scale():
    saved = torch.amp.GradScaler("cpu", enabled=False).state_dict()  # what a bf16/fp32 run saves
    scaler = ResumableGradScaler("cpu", init_scale=2.0**10)
    scaler.load_state_dict(saved)
    assert saved == {} and scaler.state_dict()["scale"] == 2.0**10
    scaler.load_state_dict(ResumableGradScaler("cpu", init_scale=8.0).state_dict())
    assert scaler.state_dict()["scale"] == 8.0


def test_channels_last_gives_the_same_first_step(train_cfg, tmp_path):
    losses = []
    for flag in (False, True):
        state = build_state(train_cfg(f"channels_last={flag}", "backbone=face_resnet27",
                                      "backbone.channels=[4,8,8,8,16]"), 6, CPU, tmp_path)
        conv = next(m for m in state.model.backbone.modules() if isinstance(m, torch.nn.Conv2d))
        assert conv.weight.is_contiguous(memory_format=torch.channels_last) == flag
        losses.append(float(train_step(state, *_batch(state))["loss"]))
        losses.append(float(train_step(state, *_batch(state, seed=1))["loss"]))
    torch.testing.assert_close(torch.tensor(losses[2:]), torch.tensor(losses[:2]), rtol=1e-4, atol=1e-5)


def test_channels_last_trains_and_its_checkpoint_loads_plainly(train_cfg, tmp_path):
    run = tmp_path / "cl"
    metrics = train(train_cfg("channels_last=true", "iterations=2", run_dir=run))
    assert math.isfinite(metrics["train/loss"])
    plain = build_state(train_cfg(), 6, CPU, tmp_path)
    plain.model.backbone.load_state_dict(_checkpoint(run)["model"]["backbone"])  # strides differ, keys do not


def test_cudnn_autotuning_and_tf32_unless_deterministic(train_cfg, monkeypatch):
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", torch.backends.cudnn.allow_tf32)
    previous = torch.get_float32_matmul_precision()
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", False)
    configure_backends(train_cfg(), CPU)
    assert torch.backends.cudnn.benchmark is False  # nothing to tune on CPU
    assert torch.get_float32_matmul_precision() == previous
    configure_backends(train_cfg(), CUDA)
    assert torch.backends.cudnn.benchmark is True and torch.backends.cudnn.deterministic is False
    assert torch.get_float32_matmul_precision() == "high" and torch.backends.cudnn.allow_tf32  # TF32
    configure_backends(train_cfg("deterministic=true"), CUDA)
    assert torch.backends.cudnn.benchmark is False and torch.backends.cudnn.deterministic is True
    assert torch.get_float32_matmul_precision() == "highest" and not torch.backends.cudnn.allow_tf32
    torch.set_float32_matmul_precision(previous)


def _record_wiring(monkeypatch) -> list:
    """Replace SyncBatchNorm conversion, DDP and nn.Module.compile by recorders (no process group, no compiler)."""
    order = []

    class RecordingDDP(nn.Module):
        _set_params_and_buffers_to_ignore_for_model = staticmethod(lambda module, names: None)

        def __init__(self, module, device_ids=None):
            super().__init__()
            order.append("ddp")
            self.module = module

    monkeypatch.setattr(nn.SyncBatchNorm, "convert_sync_batchnorm", staticmethod(lambda m: order.append("sync_bn") or m))
    monkeypatch.setattr(nn.parallel, "DistributedDataParallel", RecordingDDP)
    monkeypatch.setattr(nn.Module, "compile", lambda self, *a, **k: order.append(("compile", type(self).__name__)))
    return order


def test_sync_bn_converts_then_ddp_wraps_then_the_backbone_compiles(train_cfg, monkeypatch):
    """PyTorch's order for DDP + torch.compile: the compiled forward runs inside DDP's, so DDPOptimizer
    splits its graph at the gradient buckets."""
    order = _record_wiring(monkeypatch)
    model, loss = build_parts(train_cfg(), 6)
    network = wire_network(model, loss, None, CUDA, 2, sync_bn=True, compile_=True)
    assert order == ["sync_bn", "ddp", ("compile", type(model.backbone).__name__)]
    assert network.module.model.backbone is model.backbone  # compiled in place, inside the wrapper


def test_build_state_compiles_after_ddp_wraps(train_cfg, tmp_path, monkeypatch):
    order = _record_wiring(monkeypatch)
    monkeypatch.setattr("facetrain.train.state.world_size", lambda: 2)
    build_state(train_cfg("compile=true"), 6, CPU, tmp_path)
    assert order == ["ddp", ("compile", "SmallFaceCNN")]


@pytest.mark.slow
def test_compiled_backbone_saves_plain_keys_and_resumes(train_cfg, tmp_path):
    run = tmp_path / "compiled"
    train(train_cfg("compile=true", "iterations=2", run_dir=run))
    reference = build_state(train_cfg(), 6, CPU, tmp_path).model.backbone.state_dict()
    saved = _checkpoint(run)["model"]["backbone"]
    assert list(saved) == list(reference) and not any("_orig_mod" in k for k in saved)
    train(train_cfg("iterations=4", "resume=true", run_dir=run))  # compiled -> plain
    assert _checkpoint(run)["iteration"] == 4


@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_on_gpu(precision, train_cfg, tmp_path):
    run = tmp_path / precision
    metrics = train(train_cfg(f"precision={precision}", "device=cuda", "channels_last=true", "iterations=4",
                              run_dir=run))
    assert math.isfinite(metrics["train/loss"])
    scale = _checkpoint(run)["scaler"]
    assert (precision == "fp16") == bool(scale)  # only fp16 carries a loss scale
    train(train_cfg(f"precision={precision}", "device=cuda", "iterations=6", "resume=true", run_dir=run))
    assert _checkpoint(run)["iteration"] == 6


@pytest.mark.gpu
def test_compile_on_gpu_keeps_plain_keys(train_cfg, tmp_path):
    run = tmp_path / "compiled"
    train(train_cfg("compile=true", "channels_last=true", "precision=bf16", "device=cuda", "iterations=2",
                    run_dir=run))
    assert not any("_orig_mod" in k for k in _checkpoint(run)["model"]["backbone"])
