"""Shared fixtures: a tiny synthetic data tree, composed real configs shrunk to seconds, the CLI."""

from __future__ import annotations

import gzip
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict

from facetrain.data.synth import SynthSpec, write_synthetic_data

REPO = Path(__file__).resolve().parents[1]
PROTOCOL_FIXTURES = REPO / "tests" / "fixtures" / "protocols"  # provenance, licences and sums: its README.md

TINY_SPEC = SynthSpec(seed=3, train_identities=6, train_min_images=4, train_max_images=6, lfw_folds=10,
                      lfw_pairs_per_fold=2, lfw_identities_per_fold=3, lfw_max_images=4)


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state: CI runs the suite once, so nothing may be left to chance."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def fixture_bytes(path: Path) -> bytes:
    """A protocol fixture's original bytes: the big lists are stored gzipped to keep the repository small."""
    return gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()


@pytest.fixture(scope="session")
def protocols(tmp_path_factory) -> Path:
    """tests/fixtures/protocols as a user's copy looks (every `.gz` list decompressed), for the parsers to read."""
    root = tmp_path_factory.mktemp("protocols")
    for src in PROTOCOL_FIXTURES.rglob("*"):
        if src.is_file() and src.name not in ("README.md", "SHA256SUMS"):
            dest = root / src.relative_to(PROTOCOL_FIXTURES).with_name(src.name.removesuffix(".gz"))
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(fixture_bytes(src))
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """<root>/synth/casia and <root>/synth/lfw, a few dozen images (shared by the whole session)."""
    root = tmp_path_factory.mktemp("data")
    write_synthetic_data(root / "synth", TINY_SPEC, workers=1)
    return root


def tiny_train_overrides(data_root: Path, run_dir: Path) -> list[str]:
    return [
        f"paths.data={data_root}", f"run_dir={run_dir}", "device=cpu", "iterations=4", "batch_size=8",
        "log_every=2", "checkpoint_every=2", "data.num_workers=0", "progress=false", "embedding_dim=16",
        "backbone.channels=[4,8,8,16]", "val.every=0",
    ]


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """The real primary config `name` with overrides, outside a Hydra run (as tests need)."""
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


@pytest.fixture
def train_cfg(tiny_data, tmp_path):
    """A factory: compose train.yaml shrunk to seconds, plus extra overrides."""

    def make(*extra: str, run_dir: Path | None = None) -> DictConfig:
        return compose_config("train", tiny_train_overrides(tiny_data, run_dir or tmp_path / "run") + list(extra))

    return make


def run_cli(*args: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `facetrain ARGS` as a user would (a fresh process), returning its output."""
    full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    proc = subprocess.run([sys.executable, "-m", "facetrain.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"facetrain {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA: skipped, with the reason, on a machine without it."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
