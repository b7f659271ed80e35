"""`facetrain export`: the exported backbone (TorchScript, ONNX) gives the PyTorch model's embeddings."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import compose_config, run_cli, tiny_train_overrides

import facetrain.export as export_module
from facetrain.backbones import FaceResNet, IResNet, LeNetPP
from facetrain.errors import FacetrainError
from facetrain.export import (
    default_export_path,
    example_images,
    export_backbone,
    export_from_config,
    load_exported,
)
from facetrain.models.trained_run import load_embedder
from facetrain.train import train

HAS_ONNX = all(importlib.util.find_spec(m) for m in ("onnx", "onnxscript", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAS_ONNX, reason="onnx/onnxscript/onnxruntime not installed "
                                                     "(pip install 'facetrain[export]')")

FAMILIES = {  # small widths: the same layers and code paths as the full networks, in a second
    "face_resnet": lambda: FaceResNet(embedding_dim=16, channels=(4, 8, 8, 16, 16)),
    "lenet_pp": lambda: LeNetPP(),
    "iresnet": lambda: IResNet(embedding_dim=16, layers=(1, 1, 1, 1), input_size=(112, 96)),
}


def _check_same_embeddings(model, path: Path, fmt: str) -> None:
    images = example_images(model, batch_size=3, seed=5)  # a batch size other than the trace's
    with torch.no_grad():
        expected = model(images)
    torch.testing.assert_close(load_exported(path, fmt)(images), expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("family", ["lenet_pp", "iresnet"])  # face_resnet: the command test below
def test_torchscript_export_gives_the_same_embeddings(family, tmp_path):
    torch.manual_seed(0)
    model = FAMILIES[family]().eval()
    path = export_backbone(model, "torchscript", tmp_path / "backbone.pt")
    _check_same_embeddings(model, path, "torchscript")


@needs_onnx
@pytest.mark.parametrize("family", ["lenet_pp", pytest.param("iresnet", marks=pytest.mark.slow)])
def test_onnx_export_gives_the_same_embeddings(family, tmp_path):
    torch.manual_seed(0)
    model = FAMILIES[family]().eval()
    path = export_backbone(model, "onnx", tmp_path / "backbone.onnx")
    _check_same_embeddings(model, path, "onnx")


@pytest.fixture(scope="module")
def trained_run(tiny_data, tmp_path_factory) -> Path:
    """A 2-iteration Face-ResNet run (narrow, so it takes seconds) with checkpoints/last.pt."""
    run_dir = tmp_path_factory.mktemp("run")
    overrides = [o for o in tiny_train_overrides(tiny_data, run_dir) if not o.startswith("backbone.")]
    cfg = compose_config("train", [*overrides, "backbone=face_resnet27", "backbone.channels=[4,8,8,16,16]",
                                   "iterations=2", "batch_size=4"])
    train(cfg)
    return run_dir


def test_export_command_writes_the_trained_backbone(trained_run, tmp_path):
    out = tmp_path / "face.pt"
    proc = run_cli("export", f"model={trained_run}", "format=torchscript", f"out={out}",
                   f"hydra.run.dir={tmp_path / 'hydra'}", cwd=tmp_path)
    assert str(out) in proc.stdout
    _check_same_embeddings(load_embedder(trained_run / "checkpoints" / "last.pt").embedder.eval(), out, "torchscript")


@needs_onnx
def test_export_onnx_next_to_the_run_by_default(trained_run):
    import onnxruntime

    cfg = compose_config("export", [f"model={trained_run}", "format=onnx"])
    out = export_from_config(cfg)
    assert out == trained_run / "export" / "backbone.onnx" and out.is_file()
    model = load_embedder(trained_run / "checkpoints" / "last.pt").embedder.eval()
    images = example_images(model, batch_size=5, seed=7)  # a batch size the export never saw
    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {session.get_inputs()[0].name: images.numpy()})
    with torch.no_grad():
        expected = model(images).numpy()
    assert got.shape == expected.shape == (5, 16) and np.abs(expected).max() > 1e-3
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("override, message", [
    ("format=tflite", "format='tflite' is not one of torchscript, onnx"),
    ("parity_batch=0", "parity_batch=0 must be an integer >= 1"),  # was torch.stack's traceback
    ("parity_cosine=2", "parity_cosine=2 must be a number from -1 to 1"),  # was blamed on the export
    ("tolerance=-1", "tolerance=-1 must be a number >= 0"),
    ("out={tmp}", "is a folder; give the file to write, e.g. out=.*backbone.pt"),  # was a traceback
    ("out={tmp}/notes.txt/b.pt", "notes.txt is a file, not a folder"),
])
def test_export_refuses_bad_settings_before_writing(trained_run, tmp_path, override, message):
    (tmp_path / "notes.txt").write_text("a file")
    cfg = compose_config("export", [f"model={trained_run}", override.format(tmp=tmp_path)])
    with pytest.raises(FacetrainError, match=message):
        export_from_config(cfg)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_a_damaged_checkpoint_names_what_export_takes(tmp_path):
    bad = tmp_path / "last.pt"
    bad.write_bytes(b"")
    with pytest.raises(FacetrainError, match=r"empty, cut short or damaged\); export takes a facetrain run") as err:
        export_from_config(compose_config("export", [f"model={bad}"]))
    assert ".onnx" not in str(err.value)  # model='s hint offers an .onnx model, which export cannot take
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_default_export_path_is_inside_the_run_directory():
    assert default_export_path(Path("/r/run1/checkpoints/last.pt"), "torchscript") == Path("/r/run1/export/backbone.pt")
    assert default_export_path(Path("/models/face.pt"), "onnx") == Path("/models/export/backbone.onnx")


def test_onnx_without_the_packages_names_the_extra(monkeypatch, tmp_path):
    import builtins

    real_import = builtins.__import__

    def no_onnx(name, *args, **kwargs):
        if name.split(".")[0] in ("onnx", "onnxscript"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_onnx)
    with pytest.raises(FacetrainError, match=r"facetrain\[export\]"):
        export_backbone(LeNetPP().eval(), "onnx", tmp_path / "x.onnx")


def test_export_check_refuses_a_file_whose_embeddings_differ(trained_run, tmp_path, monkeypatch):
    """check=true runs the written file: within tolerance it passes, a file 1% off is refused in one line."""
    cfg = compose_config("export", [f"model={trained_run}", "format=torchscript", f"out={tmp_path / 'a.pt'}"])
    assert export_from_config(cfg) == tmp_path / "a.pt"
    real = export_module.load_exported
    monkeypatch.setattr(export_module, "load_exported", lambda path, fmt: lambda x: real(path, fmt)(x) * 1.01)
    with pytest.raises(FacetrainError, match=r"differ from PyTorch's by 1\.0\de-02 \(> tolerance=0\.0001\)"):
        export_from_config(cfg)
    cfg.tolerance = 0.02
    assert export_from_config(cfg) == tmp_path / "a.pt"
