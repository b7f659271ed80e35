"""model= and init_from= with the field's models: arcface_torch backbone.pth state dicts and ONNX files."""

import numpy as np
import pytest
import torch
from arcface_helpers import ArcIResNet
from bin_helpers import lfw_as_bin
from helpers import compose_config, tiny_train_overrides
from hydra.utils import instantiate
from verification_helpers import threshold_rule_accuracy

from facetrain.backbones import IResNet
from facetrain.errors import FacetrainError
from facetrain.models.onnx_model import OnnxEmbedder
from facetrain.models.trained_run import load_embedder
from facetrain.run.checkpoint import load_checkpoint
from facetrain.train.init_from import init_backbone


@pytest.fixture(scope="module")
def arc_file(tmp_path_factory):
    """An arcface_torch-shaped r(2,1,1,1) at 112x112, 16-d, in eval mode, and its saved state dict."""
    torch.manual_seed(1)
    reference = ArcIResNet((2, 1, 1, 1), 16, side=7).eval()
    path = tmp_path_factory.mktemp("arc") / "backbone.pth"
    torch.save(reference.state_dict(), path)
    return reference, path


def _pixels(n: int, size: int = 112) -> torch.Tensor:
    return torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=torch.Generator().manual_seed(5))


def test_arcface_state_dict_loads_as_iresnet_with_the_same_outputs(arc_file):
    reference, path = arc_file
    trained = load_embedder(path)
    model = trained.embedder
    assert isinstance(model, IResNet) and model.layers == (2, 1, 1, 1) and model.embedding_dim == 16
    assert trained.preprocessing.input_size == (112, 112) and trained.preprocessing.fit == "resize"
    images = _pixels(3)
    with torch.no_grad():
        ours, theirs = model(images), reference(images)
    assert theirs.abs().max() > 0.1
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


def _edited(path, tmp_path, edit):
    state = torch.load(path, weights_only=True)
    edit(state)
    out = tmp_path / "edited.pth"
    torch.save(state, out)
    return out


@pytest.mark.parametrize("edit, message", [
    (lambda s: s.__setitem__("layer1.0.bn9.weight", s.pop("layer1.0.bn1.weight")),
     r"key 'layer1\.0\.bn9\.weight' is not an arcface_torch iresnet key"),
    (lambda s: s.__setitem__("layer2.0.conv1.weight", torch.zeros(128, 64, 1, 1)),
     r"'layer2\.0\.conv1\.weight' has shape \[128, 64, 1, 1\], the model needs \[128, 64, 3, 3\]"),
    (lambda s: s.pop("layer3.0.bn3.running_var"), r"key 'layer3\.0\.bn3\.running_var' is missing"),
    (lambda s: [s.pop(k) for k in list(s) if k.startswith("layer4")], "it has no layer4 blocks"),
])
def test_a_file_that_does_not_fit_is_one_line_naming_the_first_mismatch(arc_file, tmp_path, edit, message):
    bad = _edited(arc_file[1], tmp_path, edit)
    with pytest.raises(FacetrainError, match=message) as err:
        load_embedder(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)


def test_a_file_that_is_no_model_and_head_of_a_foreign_model_are_refused(arc_file, tmp_path):
    other = tmp_path / "other.pth"
    torch.save({"weight": torch.zeros(2)}, other)
    with pytest.raises(FacetrainError, match="neither a facetrain checkpoint"):
        load_embedder(other)
    with pytest.raises(FacetrainError, match="embedding=head needs a facetrain checkpoint"):
        load_embedder(arc_file[1], "head")


@pytest.mark.parametrize("content, why", [
    (b"model=runs/train/RUN\n", "not a PyTorch checkpoint"),  # a text file: torch says lines of weights_only advice
    (b"hello, a note\n", "not a PyTorch checkpoint"),  # 'h' reads as a pickle opcode: it was 'KeyError: 101'
    (b"", "empty, cut short or damaged"),
    ("cut", "empty, cut short or damaged"),  # the first 2 kB of a real checkpoint
])
def test_a_file_that_cannot_be_loaded_is_one_line_saying_why(arc_file, tmp_path, content, why):
    bad = tmp_path / "bad.pth"
    bad.write_bytes(arc_file[1].read_bytes()[:2000] if content == "cut" else content)
    with pytest.raises(FacetrainError, match=why) as err:
        load_embedder(bad)
    assert "\n" not in str(err.value) and "give a run directory" in str(err.value)
    with pytest.raises(FacetrainError, match=f"{why}.*; init_from takes a facetrain run directory") as err:
        init_backbone(torch.nn.Identity(), str(bad))  # it suggested an .onnx model
    assert ".onnx" not in str(err.value)


def test_onnx_float_nhwc_with_a_fixed_batch_is_normalized_and_chunked(tmp_path):
    """A hand-made graph: float32 [1, 8, 6, 3] NHWC -> the mean over H and W (what a face model's input looks like)."""
    onnx = pytest.importorskip("onnx", reason="onnx is not installed (pip install 'facetrain[export]')")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'facetrain[export]')")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("ReduceMean", ["x"], ["y"], axes=[1, 2], keepdims=0)], "mean",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8, 6, 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3])])
    path = tmp_path / "mean.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), path)
    model = load_embedder(path).embedder
    assert isinstance(model, OnnxEmbedder) and (model.layout, model.input_size, model.batch) == ("NHWC", (8, 6), 1)
    images = torch.randint(0, 256, (3, 3, 8, 6), dtype=torch.uint8)
    expected = ((images.double() - 127.5) / 127.5).mean(dim=(2, 3))
    np.testing.assert_allclose(model(images).numpy(), expected.numpy(), atol=1e-5)


def _evaluate(tiny_data, out, protocol, model, *overrides):
    cfg = compose_config("eval", [f"protocol={protocol}", f"paths.data={tiny_data}", f"run_dir={out}", "device=cpu",
                                  "progress=false", "num_workers=0", "cache=false", f"model={model}", *overrides])
    return instantiate(cfg.protocol.evaluate)(cfg)


@pytest.mark.slow  # the torch.export-based ONNX export alone takes 10-20 s on 2 CPU cores
def test_exported_onnx_scores_the_lfw_accuracy_of_its_checkpoint(tiny_data, tmp_path):
    pytest.importorskip("onnxscript", reason="onnxscript is not installed (pip install 'facetrain[export]')")
    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed (pip install 'facetrain[export]')")
    from facetrain.export import export_backbone
    from facetrain.train import train

    run = tmp_path / "run"
    train(compose_config("train", tiny_train_overrides(tiny_data, run)))
    onnx_file = export_backbone(load_embedder(run / "checkpoints" / "last.pt").embedder, "onnx",
                                tmp_path / "model.onnx")
    torch_scores = _evaluate(tiny_data, tmp_path / "pt", "lfw", run)
    onnx_scores = _evaluate(tiny_data, tmp_path / "onnx", "lfw", onnx_file)
    assert onnx_scores["lfw/acc_mean"] == torch_scores["lfw/acc_mean"]
    assert onnx_scores["lfw/auc"] == pytest.approx(torch_scores["lfw/auc"], abs=1e-6)
    a, b = (np.load(tmp_path / d / "features_lfw.npz")["features"] for d in ("pt", "onnx"))
    np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-4 * np.abs(a).max())


@pytest.mark.parametrize("protocol", ["lfw", "bin"])
def test_arcface_state_dict_scores_a_protocol(tiny_data, tmp_path, protocol):
    """A 16x16 arcface-shaped model (1x1 last map) keeps it fast; the same loader serves ytf, ijba and blufr.

    The written features are the source module's own forward (mirror sum), and the accuracy is recomputed from
    them with a brute-force threshold on the 9 other folds."""
    from facetrain.data.images.image_io import read_image
    from facetrain.eval.protocols.lfw import parse_lfw_pairs

    torch.manual_seed(2)
    small = ArcIResNet((1, 1, 1, 1), 8, side=1).eval()
    path = tmp_path / "small.pth"
    torch.save(small.state_dict(), path)
    root = tiny_data / "synth" / "lfw"
    # the exhaustive threshold search, as LFW's (the .bin default is insightface's 0.01 grid)
    extra = ([f"protocol.paths=[{lfw_as_bin(root, tmp_path / 'lfw.bin')}]", "protocol.threshold_search=exhaustive"]
             if protocol == "bin" else [])
    metrics = _evaluate(tiny_data, tmp_path / "out", protocol, path, *extra)
    assert load_embedder(path).embedder.input_size == (16, 16)

    pairs = parse_lfw_pairs(root / "pairs.txt")
    files = [p for pair in zip(pairs.left, pairs.right, strict=True) for p in pair]  # image 2i, 2i+1 of the .bin
    written = np.load(tmp_path / "out" / f"features_{protocol}.npz")
    row = {str(p): i for i, p in enumerate(written["paths"])}
    keys = files if protocol == "lfw" else [f"lfw/{k}" for k in range(len(files))]
    images = torch.stack([read_image(root / f, (16, 16), "resize") for f in files])
    with torch.no_grad():
        expected = (small(images) + small(images.flip(-1))).numpy()
    np.testing.assert_allclose(written["features"][[row[k] for k in keys]], expected, rtol=1e-5, atol=1e-5)
    unit = expected / np.linalg.norm(expected, axis=1, keepdims=True)
    scores = np.sum(unit[0::2] * unit[1::2], axis=1)
    accs = [threshold_rule_accuracy(scores, pairs.same, pairs.fold == f) for f in range(10)]
    key = "lfw/acc_mean" if protocol == "lfw" else "bin/lfw/acc_mean"
    assert metrics[key] == pytest.approx(np.mean(accs), abs=1e-9) and len(set(accs)) > 1


def test_init_from_arcface_weights_copies_every_tensor(arc_file):
    reference, path = arc_file
    backbone = IResNet(16, (112, 112), (2, 1, 1, 1))
    init_backbone(backbone, str(path))
    ours = backbone.state_dict()
    assert torch.equal(ours["stem.0.weight"], reference.conv1.weight)
    assert torch.equal(ours["stages.0.1.body.4.weight"], reference.layer1[1].conv2.weight)
    assert torch.equal(ours["stages.3.0.shortcut.1.running_var"], reference.layer4[0].downsample[1].running_var)
    assert torch.equal(ours["bn_feature.bias"], reference.features.bias)
    with pytest.raises(FacetrainError, match="holds arcface_torch iresnet weights but backbone is SmallFaceCNN"):
        init_backbone(instantiate(compose_config("train", []).backbone), str(path))


def test_init_from_a_checkpoint_starts_a_fresh_run_from_its_backbone(train_cfg, tmp_path):
    from facetrain.train import train

    first = tmp_path / "first"
    train(train_cfg(run_dir=first))
    source = load_checkpoint(first / "checkpoints" / "last.pt")["model"]["backbone"]
    backbone = instantiate(train_cfg().backbone)
    init_backbone(backbone, str(first))  # a run directory: its last.pt
    assert all(torch.equal(v, source[k]) for k, v in backbone.state_dict().items())
    metrics = train(train_cfg("iterations=2", f"init_from={first / 'checkpoints' / 'last.pt'}",
                              run_dir=tmp_path / "second"))
    second = load_checkpoint(tmp_path / "second" / "checkpoints" / "last.pt")
    assert metrics["train/iterations"] == 2 and second["iteration"] == 2
    assert not torch.equal(second["model"]["backbone"]["fc.weight"], source["fc.weight"])  # it trained on
    with pytest.raises(FacetrainError, match="does not fit the model"):
        train(train_cfg("embedding_dim=8", f"init_from={first}", run_dir=tmp_path / "third"))
