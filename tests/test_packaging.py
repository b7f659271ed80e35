"""The explicit package list in pyproject.toml must name every package (configs/ is mapped in)."""

from pathlib import Path

import tomllib
import torch
from helpers import REPO


def test_every_package_is_listed():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for top in ("facetrain", "hydra_plugins")
             for p in (REPO / top).rglob("__init__.py")}
    assert found | {"facetrain.configs"} == listed
    assert not (REPO / "hydra_plugins" / "__init__.py").exists()  # a namespace that other plugins share


def test_configs_ship_with_the_package():
    import importlib.resources

    files = importlib.resources.files("facetrain.configs")
    assert files.joinpath("train.yaml").is_file() and files.joinpath("loss", "l2softmax.yaml").is_file()
    assert Path(str(files)).resolve() == (REPO / "configs").resolve()


def test_torch_floor_has_the_clipping_apis_we_use():
    """get_total_norm and clip_grads_with_norm_ (the sharded global norm, clipping) came in torch 2.6."""
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert "torch>=2.6" in deps
    assert hasattr(torch.nn.utils, "get_total_norm") and hasattr(torch.nn.utils, "clip_grads_with_norm_")
