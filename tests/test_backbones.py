"""Backbones: parameter counts against the reference numbers, shapes per input size, a training step,
channels_last, torch.compile, and ImageNet weights read from a local file only."""

import pytest
import torch
import torchvision
from helpers import compose_config
from hydra.utils import instantiate
from torch import nn

from facetrain.backbones import (
    Backbone,
    FaceResNet,
    IResNet,
    LeNetPP,
    MobileFaceNet,
    SmallFaceCNN,
    SphereFace,
    TorchvisionTrunk,
)
from facetrain.backbones.torchvision_trunks import imagenet_weights_file
from facetrain.errors import FacetrainError

SIZES = [(112, 96), (112, 112), (128, 128)]
BIG = ["resnet101", "resnext101", "iresnet18", "iresnet34", "iresnet50", "iresnet100", "iresnet200"]  # seconds per step on 2 CPU cores
SMALL = ["face_resnet27", "sphereface20", "lenet_pp", "mobilefacenet"]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Counted layer by layer from the released definitions (caffe-face's face_train_test.prototxt and
# mnist_train_test.prototxt, wy1iu/sphereface's sphereface_model.prototxt, insightface's iresnet.py),
# restated in each class's docstring with the derivation.
PAPER_COUNTS = [
    (FaceResNet, {"input_size": (112, 96)}, 27_536_800),
    (FaceResNet, {"input_size": (112, 112)}, 28_847_520),
    (FaceResNet, {"input_size": (128, 128)}, 31_731_104),
    (SphereFace, {"input_size": (112, 96)}, 22_666_944),
    (SphereFace, {"input_size": (112, 112)}, 24_501_952),
    (SphereFace, {"input_size": (128, 128)}, 28_434_112),
    (LeNetPP, {}, 797_604),
    (IResNet, {"input_size": (112, 112), "layers": (3, 4, 14, 3)}, 43_590_848),
    (IResNet, {"input_size": (112, 112), "layers": (3, 13, 30, 3)}, 65_156_160),
    # insightface arcface_torch's MobileFaceNet(blocks=(1, 4, 6, 2), scale=1, num_features=128), counted
    (MobileFaceNet, {}, 1_003_136),
]


@pytest.mark.parametrize("cls, kwargs, expected", PAPER_COUNTS,
                         ids=[f"{c.__name__}-{k.get('layers', '')}{k.get('input_size', '')}" for c, k, _ in PAPER_COUNTS])
def test_parameter_count_matches_the_original_network(cls, kwargs, expected):
    with torch.device("meta"):  # shapes only: no memory, no init time
        assert n_params(cls(**kwargs)) == expected


def test_face_resnet_has_27_convs_and_frozen_caffe_biases_dropped():
    model = FaceResNet()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 27 and sum(c.bias is None for c in convs) == 22  # 2*(1+2+5+3) residual convs
    assert len([m for m in SphereFace().modules() if isinstance(m, nn.Conv2d)]) == 20


@pytest.mark.parametrize("arch, reference", [
    ("resnet101", lambda: torchvision.models.resnet101()),
    ("resnext101_32x4d", lambda: torchvision.models.resnet.ResNet(
        torchvision.models.resnet.Bottleneck, [3, 4, 23, 3], groups=32, width_per_group=4)),
])
def test_torchvision_trunk_count_is_torchvision_minus_fc_plus_fc512(arch, reference):
    with torch.device("meta"):
        tv = reference()
        ours = TorchvisionTrunk(arch=arch, embedding_dim=512)
    trunk = n_params(tv) - n_params(tv.fc)
    assert n_params(ours) == trunk + 2048 * 512 + 512
    assert trunk == {"resnet101": 42_500_160, "resnext101_32x4d": 42_128_704}[arch]  # torchvision's models, fc dropped


def _build(option: str, *overrides: str) -> nn.Module:
    return instantiate(compose_config("train", [f"backbone={option}", "embedding_dim=64", *overrides]).backbone)


def _images(model: nn.Module, batch: int = 2, device: str = "cpu") -> torch.Tensor:
    shape = (batch, getattr(model, "in_channels", 3), *model.input_size)
    return torch.randint(0, 256, shape, dtype=torch.uint8, device=device)


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
@pytest.mark.parametrize("option", [pytest.param(o, marks=pytest.mark.slow) if o in BIG and o != "iresnet50" else o
                                    for o in BIG + SMALL])  # the deep trunks at every size: in the slow suite
def test_output_shape_at_every_input_size(option, size):
    """On the meta device: shapes are propagated (and checked by every layer) without any arithmetic."""
    with torch.device("meta"):
        model = _build(option, f"input_size=[{size[0]},{size[1]}]").eval()
        out = model(_images(model, device="meta"))
    assert model.input_size == size
    assert out.shape == (2, 64)  # embedding_dim=64 on the command line beats every backbone's default


@pytest.mark.parametrize("option", [*BIG, *SMALL, "small_cnn"])
def test_every_backbone_carries_the_backbone_attributes(option):
    """Export and eval build inputs from these; the loss sizes itself from embedding_dim."""
    with torch.device("meta"):
        model = _build(option)
    assert isinstance(model, Backbone)
    assert (model.embedding_dim, model.input_size) == (64, PAPER_DEFAULTS[option][1])
    assert model.in_channels == (1 if option == "lenet_pp" else 3)


PAPER_DEFAULTS = {  # option: (embedding_dim, input_size, parameters) from `backbone=OPTION` alone (as PAPER_COUNTS)
    "small_cnn": (128, (112, 96), 980_384),
    "face_resnet27": (512, (112, 96), 27_536_800),
    # convs 98,384 with bias + 465,408 residual, PReLU 856, fc5 128*2*1*128 + 128 = 32,896 (hand-counted)
    "face_resnet_mini": (128, (56, 48), 597_544),
    "sphereface20": (512, (112, 96), 22_666_944),
    "lenet_pp": (2, (28, 28), 797_604),
    "iresnet18": (512, (112, 112), 24_025_600),
    "iresnet34": (512, (112, 112), 34_139_328),
    "iresnet50": (512, (112, 112), 43_590_848),
    "iresnet100": (512, (112, 112), 65_156_160),
    "iresnet200": (512, (112, 112), 118_833_920),
    "resnet101": (512, (128, 128), 43_549_248),
    "resnext101": (512, (128, 128), 43_177_792),
    "mobilefacenet": (128, (112, 112), 1_003_136),
}


@pytest.mark.parametrize("option", PAPER_DEFAULTS)
def test_backbone_alone_gives_its_paper_model(option):
    with torch.device("meta"):
        model = instantiate(compose_config("train", [f"backbone={option}"]).backbone)
    assert (model.embedding_dim, model.input_size, n_params(model)) == PAPER_DEFAULTS[option]


@pytest.mark.parametrize("overrides, expected", [
    (["embedding_dim=128"], (128, (112, 96), 23_604_256)),  # the count before backbones carried their defaults
    (["input_size=[128,128]"], (512, (128, 128), 31_731_104)),  # the L2-softmax crop: fc5 reads 6x6x512
    (["input_size=[112,112]", "embedding_dim=512"], (512, (112, 112), 28_847_520)),
])
def test_command_line_beats_the_backbone_defaults(overrides, expected):
    with torch.device("meta"):
        model = instantiate(compose_config("train", ["backbone=face_resnet27", *overrides]).backbone)
    assert (model.embedding_dim, model.input_size, n_params(model)) == expected


def test_mobilefacenet_is_the_papers_table_1():
    """Chen et al. 2018: 0.99M parameters and 221M MAdds at 112x112. The paper's count is the deploy-time
    one (each BN folded into its conv leaves one bias per channel); FlopCounterMode counts 2 FLOPs per MAdd."""
    from torch.utils.flop_counter import FlopCounterMode

    model = MobileFaceNet().eval()
    bn_channels = sum(m.num_features for m in model.modules() if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d))
    assert (n_params(model), bn_channels) == (1_003_136, 9_792)
    assert n_params(model) - bn_channels == 993_344  # 0.99M
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert (convs[-1].kernel_size, convs[-1].groups, model.feature_map) == ((7, 7), 512, (512, 7, 7))  # GDConv
    assert sum(isinstance(m, nn.PReLU) for m in model.modules()) == 2 + 15 * 2 + 1  # every non-linear layer
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        model(_images(model, batch=1))
    assert round(flops.get_total_flops() / 2e6) == 221


@pytest.mark.parametrize("size, kernel", [((112, 112), (7, 7)), ((112, 96), (7, 6)), ((56, 48), (4, 3))])
def test_mobilefacenet_gdconv_covers_the_whole_final_map(size, kernel):
    with torch.device("meta"):
        model = MobileFaceNet(input_size=size)
    assert model.gdconv[0].kernel_size == kernel and model.feature_map == (512, *kernel)
    assert n_params(model) == 1_003_136 - 512 * (49 - kernel[0] * kernel[1])  # only GDConv's weights follow the size


def test_small_cnn_in_channels_changes_only_the_first_conv():
    with torch.device("meta"):
        rgb, grey = SmallFaceCNN(), SmallFaceCNN(in_channels=1)
        out = grey(torch.zeros(2, 1, 112, 96, dtype=torch.uint8, device="meta"))
    assert n_params(rgb) == 980_384  # the count before in_channels existed
    assert n_params(rgb) - n_params(grey) == 2 * 16 * 3 * 3 and out.shape == (2, 128)


@pytest.mark.parametrize("size, grid", [((112, 112), (7, 7)), ((112, 96), (7, 6)), ((128, 128), (8, 8))])
def test_iresnet_fc_input_follows_the_input_size(size, grid):
    with torch.device("meta"):
        model = IResNet(input_size=size, layers=(1, 1, 1, 1)).eval()  # same strides as IResNet-50/100
        assert model(_images(model, device="meta")).shape == (2, 512)
    assert model.feature_map == (512, *grid) and model.fc.in_features == 512 * grid[0] * grid[1]


@pytest.mark.parametrize("stem, grid", [("face", 7), ("imagenet", 4)])
def test_face_stem_keeps_a_7x7_final_map_at_112(stem, grid):
    with torch.device("meta"):
        model = TorchvisionTrunk(arch="resnet101", input_size=(112, 112), stem=stem).eval()
        pre_pool = nn.Sequential(*list(model.trunk.children())[:-2])(model.norm(_images(model, device="meta")))
    assert pre_pool.shape[-2:] == (grid, grid)


def _train_step(model: nn.Module) -> None:
    """One SGD step on 8 seeded images: enough that every PReLU slope sees a negative input."""
    torch.manual_seed(0)
    model.train()
    classifier = nn.Linear(model.embedding_dim, 3)
    params = list(model.parameters()) + list(classifier.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    loss = nn.functional.cross_entropy(classifier(model(_images(model, batch=8))), torch.arange(8) % 3)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    moved = [not torch.equal(a, b) for a, b, p in zip(before, model.parameters(), model.parameters(), strict=True)
             if p.requires_grad]
    assert all(moved), "every trainable parameter gets a gradient step"


@pytest.mark.parametrize("option", ["face_resnet27", "lenet_pp", "mobilefacenet"])
def test_one_training_step(option):
    torch.manual_seed(0)  # unseeded, 1 run in 8 gave LeNet++'s final PReLU only positive inputs: no slope gradient
    _train_step(_build(option))


@pytest.mark.slow
@pytest.mark.parametrize("option", ["sphereface20", *BIG])
def test_one_training_step_big(option):
    torch.manual_seed(0)
    _train_step(_build(option))


TINY = {  # each family at a small width: same code paths, a fraction of the time
    "face_resnet": lambda: FaceResNet(embedding_dim=16, channels=(4, 8, 8, 16, 16)),
    "sphereface": lambda: SphereFace(embedding_dim=16, channels=(8, 8, 16, 16)),
    "lenet_pp": lambda: LeNetPP(),
    "iresnet": lambda: IResNet(embedding_dim=16, layers=(1, 1, 1, 1)),
    "torchvision": lambda: TorchvisionTrunk(arch="resnet18", embedding_dim=16, input_size=(64, 64)),
    "mobilefacenet": lambda: MobileFaceNet(embedding_dim=16, input_size=(56, 48)),
}


@pytest.mark.parametrize("family", TINY)
def test_channels_last_gives_the_same_embeddings(family):
    torch.manual_seed(0)
    model = TINY[family]().eval()
    images = _images(model)
    with torch.no_grad():
        expected = model(images)
        model = model.to(memory_format=torch.channels_last)
        got = model(images.contiguous(memory_format=torch.channels_last))
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_input_norm_runs_once_inside_the_backbone():
    model = TINY["face_resnet"]().eval()
    images = _images(model)
    with torch.no_grad():
        assert torch.equal(model(images), model(images.float()))  # uint8 or 0..255 float, same result
        assert torch.allclose(model.norm(torch.tensor([0, 255])), torch.tensor([-127.5 / 128, 127.5 / 128]))


def test_whole_backbone_compiles_into_one_graph():
    """fullgraph=True fails on any graph break; aot_eager skips the C++ build (seconds, not a minute)."""
    model = LeNetPP().eval()
    images = _images(model)
    compiled = torch.compile(model, backend="aot_eager", fullgraph=True)
    with torch.no_grad():
        torch.testing.assert_close(compiled(images), model(images))


@pytest.mark.slow
def test_inductor_compiled_training_step():
    torch.manual_seed(0)
    model = TINY["iresnet"]()
    compiled = torch.compile(model)
    images = _images(model, batch=4)
    loss = compiled(images).square().mean()
    loss.backward()
    torch.testing.assert_close(loss, model(images).square().mean(), rtol=1e-4, atol=1e-5)


def test_pretrained_weights_come_from_the_torch_home_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(FacetrainError, match="resnet18-.*pth.*no download"):
        TorchvisionTrunk(arch="resnet18", pretrained=True)
    source = torchvision.models.resnet18()
    path = imagenet_weights_file("resnet18", "IMAGENET1K_V1")
    assert path.parent == tmp_path / "hub" / "checkpoints"
    path.parent.mkdir(parents=True)
    torch.save(source.state_dict(), path)
    model = TorchvisionTrunk(arch="resnet18", pretrained=True)
    assert torch.equal(model.trunk.layer4[1].conv2.weight, source.layer4[1].conv2.weight)
    own = tmp_path / "own.pth"
    torch.save({k: v for k, v in source.state_dict().items() if not k.startswith("fc.")}, own)
    model = TorchvisionTrunk(arch="resnet18", pretrained=True, weights_path=str(own))
    assert torch.equal(model.trunk.conv1.weight, source.conv1.weight)


@pytest.mark.parametrize("kwargs, message", [
    ({"arch": "resnext101_32x4d", "pretrained": True}, "no ImageNet weights for resnext101_32x4d"),
    ({"arch": "resnet18", "pretrained": True, "weights_path": "/nonexistent.pth"}, "does not exist"),
    ({"arch": "resnet18", "pretrained": True, "weights": "IMAGENET9K"}, "has no weights 'IMAGENET9K'"),
    ({"arch": "squeezenet1_0"}, "not a torchvision ResNet"),
    ({"arch": "resnet18", "stem": "tiny"}, "stem='tiny'"),
])
def test_trunk_configuration_errors_name_the_fix(kwargs, message):
    with pytest.raises(FacetrainError, match=message):
        TorchvisionTrunk(**kwargs)


def test_wrong_input_is_refused_in_one_sentence():
    with pytest.raises(FacetrainError, match="input_size"):
        FaceResNet(input_size=(112,))
    with pytest.raises(FacetrainError, match="too small"):
        FaceResNet(input_size=(20, 20))
    with pytest.raises(FacetrainError, match="backbone.in_channels=3"):
        LeNetPP()(torch.zeros(1, 3, 28, 28, dtype=torch.uint8))


@pytest.mark.parametrize("fmt", ["torchscript", pytest.param("onnx", marks=pytest.mark.slow)])
def test_mobilefacenet_exports_its_embeddings(fmt, tmp_path):
    from facetrain.export import example_images, export_backbone, load_exported

    torch.manual_seed(0)
    model = MobileFaceNet(embedding_dim=16, input_size=(112, 96)).eval()
    path = export_backbone(model, fmt, tmp_path / ("backbone.pt" if fmt == "torchscript" else "backbone.onnx"))
    images = example_images(model, batch_size=3, seed=5)  # a batch size the export never saw
    with torch.no_grad():
        torch.testing.assert_close(load_exported(path, fmt)(images), model(images), rtol=1e-4, atol=1e-5)
