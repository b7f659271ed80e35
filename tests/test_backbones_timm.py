"""backbone=timm: any timm model + the embedding layer; sizes, local weights only, a 2-step run that exports."""

import importlib.util

import pytest
import torch
from helpers import compose_config, tiny_train_overrides
from hydra.utils import instantiate
from torch import nn

from facetrain.backbones import Backbone, TimmTrunk
from facetrain.errors import FacetrainError
from facetrain.export import example_images, export_backbone, export_from_config, load_exported
from facetrain.models.trained_run import load_embedder
from facetrain.train import train

timm = pytest.importorskip("timm")
HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
TESTED = ["resnet18", "mobilenetv3_small_100", "vit_tiny_patch16_224"]  # docs/backbones.md names these


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _head(features: int, dim: int) -> int:
    """BN(features) + FC(features -> dim, with bias) + BN(dim), each BN a scale and a shift."""
    return 2 * features + features * dim + dim + 2 * dim


@pytest.mark.parametrize("name, pooled", [("resnet18", 512), ("mobilenetv3_small_100", 1024),
                                          ("vit_tiny_patch16_224", 192)])
def test_parameters_are_timm_headless_plus_the_embedding_layer(name, pooled):
    with torch.device("meta"):
        ours = TimmTrunk(name, embedding_dim=128, input_size=(112, 112))
        reference = timm.create_model(name, num_classes=0, **({"img_size": 112} if "vit" in name else {}))
    assert ours.fc.in_features == pooled  # mobilenetv3's pooled output is its 1024-wide head, not num_features=576
    assert n_params(ours) == n_params(reference) + _head(pooled, 128)
    assert isinstance(ours, Backbone) and (ours.embedding_dim, ours.input_size) == (128, (112, 112))


def test_config_default_is_resnet18_at_112():
    with torch.device("meta"):
        model = instantiate(compose_config("train", ["backbone=timm"]).backbone)
    assert (model.name, model.embedding_dim, model.input_size) == ("resnet18", 512, (112, 112))
    assert n_params(model) == 11_176_512 + _head(512, 512)  # timm resnet18 without its fc: 11,176,512


def test_vit_gets_input_size_as_img_size():
    """vit_tiny_patch16_224 at 112x112: 7x7 patches + the class token = 50 position embeddings (224: 197)."""
    with torch.device("meta"):
        model = instantiate(compose_config("train", ["backbone=timm", "backbone.name=vit_tiny_patch16_224",
                                                     "input_size=[112,112]", "embedding_dim=64"]).backbone).eval()
        out = model(example_images(model).to("meta"))
    assert model.trunk.pos_embed.shape == (1, 50, 192) and out.shape == (2, 64)


def test_cnn_takes_any_size_and_ignores_img_size_under_auto():
    with torch.device("meta"):
        model = TimmTrunk("resnet18", embedding_dim=16, input_size=(56, 48)).eval()
        assert model(example_images(model).to("meta")).shape == (2, 16)
    with pytest.raises(FacetrainError, match="does not take img_size.*backbone.img_size=false"):
        TimmTrunk("resnet18", img_size=True)


def test_local_weights_load_through_timm_and_nothing_downloads(tmp_path):
    torch.manual_seed(0)
    source = timm.create_model("resnet18")  # with its 1000-way fc, as a downloaded ImageNet file has
    path = tmp_path / "resnet18.pth"
    torch.save(source.state_dict(), path)
    model = TimmTrunk("resnet18", embedding_dim=16, weights_path=str(path))
    assert torch.equal(model.trunk.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    with pytest.raises(FacetrainError, match="does not exist.*never downloads"):
        TimmTrunk("resnet18", weights_path=str(tmp_path / "missing.pth"))


def test_unknown_model_is_named_with_the_fix():
    with pytest.raises(FacetrainError, match="'resnet_nonsense' is not a timm model.*timm.list_models"):
        TimmTrunk("resnet_nonsense")


def test_timm_backbone_trains_two_steps_and_exports(tiny_data, tmp_path):
    """resnet18 at 56x48: two SGD steps through `facetrain train`, then `facetrain export` with its check."""
    overrides = [o for o in tiny_train_overrides(tiny_data, tmp_path / "run") if not o.startswith("backbone.")]
    cfg = compose_config("train", [*overrides, "backbone=timm", "backbone.name=resnet18", "input_size=[56,48]",
                                   "iterations=2", "batch_size=4", "checkpoint_every=2"])
    before = instantiate(cfg.backbone).state_dict()
    metrics = train(cfg)
    assert metrics["train/iterations"] == 2
    trained = load_embedder(tmp_path / "run" / "checkpoints" / "last.pt").embedder.eval()
    assert isinstance(trained, TimmTrunk) and trained.input_size == (56, 48)
    assert not torch.equal(trained.trunk.conv1.weight, before["trunk.conv1.weight"])  # the trunk itself trained
    out = export_from_config(compose_config("export", [f"model={tmp_path / 'run'}", "format=torchscript"]))
    images = example_images(trained, batch_size=3, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(load_exported(out, "torchscript")(images), trained(images), rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_ONNX, reason="pip install 'facetrain[export]'")
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
@pytest.mark.parametrize("name", TESTED)
def test_tested_models_export_in_both_formats(name, fmt, tmp_path):
    """All three trace to TorchScript (a ViT included: export traces, it does not script) and go through
    torch.export to ONNX; the files give PyTorch's embeddings at a batch size the export never saw."""
    torch.manual_seed(0)
    model = TimmTrunk(name, embedding_dim=32, input_size=(112, 112)).eval()
    path = export_backbone(model, fmt, tmp_path / f"backbone.{'pt' if fmt == 'torchscript' else 'onnx'}")
    images = example_images(model, batch_size=3, seed=5)
    with torch.no_grad():
        torch.testing.assert_close(load_exported(path, fmt)(images), model(images), rtol=1e-4, atol=1e-5)
