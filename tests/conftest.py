"""Shared fixtures: a tiny synthetic data tree, composed real configs shrunk to seconds (helpers: helpers.py)."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import PROTOCOL_FIXTURES, TINY_SPEC, compose_config, tiny_train_overrides
from omegaconf import DictConfig

from facetrain.data.synth import write_synthetic_data


@pytest.fixture(autouse=True)
def _seeded():
    """Every test starts from the same random state and torch's thread count: CI runs the suite once, so nothing
    may be left to chance, and a test that runs facetrain in this process (a benchmark asks for one thread) must
    not change how a later in-process run computes against a fresh process (bitwise resume checks)."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def protocols() -> Path:
    """The real protocol files, as a user's copy holds them (tests/fixtures/protocols, origins in its README)."""
    return PROTOCOL_FIXTURES


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """<root>/synth/casia and <root>/synth/lfw, a few dozen images (shared by the whole session)."""
    root = tmp_path_factory.mktemp("data")
    write_synthetic_data(root / "synth", TINY_SPEC, workers=1)
    return root


@pytest.fixture
def float64():
    """float64 as torch's default dtype for one test (the sharded = one-process checks compare exactly)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


@pytest.fixture
def train_cfg(tiny_data, tmp_path):
    """A factory: compose train.yaml shrunk to seconds, plus extra overrides."""

    def make(*extra: str, run_dir: Path | None = None) -> DictConfig:
        return compose_config("train", tiny_train_overrides(tiny_data, run_dir or tmp_path / "run") + list(extra))

    return make


def pytest_collection_modifyitems(config, items):
    """Tests marked `gpu` need CUDA: skipped, with the reason, on a machine without it."""
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marked gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
