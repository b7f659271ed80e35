"""scripts/bench_train.py runs facetrain's step and reports throughput, memory, FLOPs and MFU (CPU smoke run)."""

from __future__ import annotations

import re
import runpy

import pytest
import torch
from helpers import REPO


def test_bench_train_reports_speed_memory_flops_and_mfu(capsys):
    bench = runpy.run_path(str(REPO / "scripts" / "bench_train.py"))
    bench["main"](["--batch", "8", "--classes", "10", "--steps", "1", "--warmup", "0", "--device", "cpu",
                   "--channels-last", "backbone.channels=[4,8,8,16]", "embedding_dim=16"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    rate, gflop, mfu = (float(re.search(pattern, line).group(1).replace(",", "")) for pattern in
                        (r"([\d,.]+) images/s", r"([\d.]+) GFLOP/image", r"MFU ([\d.]+)%"))
    assert "world=1" in line and "precision=fp32" in line and rate > 0 and mfu > 0
    assert 0.001 < gflop < 1  # the tiny CNN: far below the full small_cnn's 0.176 GFLOP forward + backward


def test_matmul_peak_counts_two_flops_per_multiply_add(monkeypatch):
    bench = runpy.run_path(str(REPO / "scripts" / "bench_train.py"))
    ticks = iter([0.0, 2.0] * 3)  # every timed matmul "takes" 2 s
    monkeypatch.setattr(bench["time"], "perf_counter", lambda: next(ticks))
    assert bench["matmul_peak"](torch.device("cpu"), torch.float32, 64, reps=3) == 2 * 64**3 / 2.0


@pytest.mark.gpu
def test_bench_train_on_gpu_measures_cuda_memory_and_a_bounded_mfu(capsys):
    bench = runpy.run_path(str(REPO / "scripts" / "bench_train.py"))
    bench["main"](["--batch", "64", "--steps", "5", "--device", "cuda", "--precision", "bf16", "--channels-last"])
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert "CUDA allocated" in line and "precision=bf16" in line
    assert 0 < float(re.search(r"MFU ([\d.]+)%", line).group(1)) < 100


def test_bench_returns_its_numbers_for_gpu_check(capsys):
    bench = runpy.run_path(str(REPO / "scripts" / "bench_train.py"))
    result = bench["bench"](bench["arguments"](["--batch", "8", "--classes", "10", "--steps", "1", "--warmup", "0",
                                                "--device", "cpu", "backbone.channels=[4,8,8,16]", "embedding_dim=16"]))
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert result["images_per_s"] > 0 and result["mfu"] > 0 and result["batch"] == 8 and result["classes"] == 10
    assert f"{result['images_per_s']:,.0f} images/s" in line and f"{result['gflop_per_image']:.3f} GFLOP/image" in line
