"""facetrain.run: what training and evaluation share — atomic writes, checkpoints, the model rebuilt for eval."""

import os
import subprocess
import sys

import pytest
import torch

from facetrain.atomic import atomic_write
from facetrain.errors import FacetrainError
from facetrain.models.face_model import FaceModel
from facetrain.models.trained_run import load_embedder
from facetrain.run.checkpoint import checkpoint_path, resolve_checkpoint, run_of_checkpoint
from facetrain.run.device import pick_device
from facetrain.train import train


@pytest.mark.slow  # a fresh interpreter importing torch: 5 s; test_layout checks the same layers statically
def test_evaluation_and_export_never_import_the_trainer():
    code = ("import sys, facetrain.eval, facetrain.export, facetrain.run, facetrain.commands; "
            "bad = sorted(m for m in sys.modules if m.startswith('facetrain.train') or 'tensorboard' in m); "
            "print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=os.environ)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_atomic_write_leaves_the_old_file_when_the_writer_fails(tmp_path):
    path = tmp_path / "metrics.json"
    atomic_write(path, lambda tmp: tmp.write_text("old"))

    def crash(tmp):
        tmp.write_text("half")
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        atomic_write(path, crash)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]  # no temporary left behind


def test_atomic_write_keeps_the_suffix_numpy_needs(tmp_path):
    import numpy as np

    path = atomic_write(tmp_path / "f.npz", lambda tmp: np.savez(tmp, a=np.arange(3)))
    assert np.load(path)["a"].tolist() == [0, 1, 2]


def test_face_model_forward_gives_embeddings_and_head_features():
    from facetrain.backbones import SmallFaceCNN
    from facetrain.heads import L2ScaleHead

    model = FaceModel(SmallFaceCNN(embedding_dim=8, channels=(4, 8, 8, 8)), L2ScaleHead(alpha=5.0)).eval()
    images = torch.randint(0, 256, (3, 3, 112, 96), dtype=torch.uint8)
    embeddings, features = model(images)
    assert embeddings.shape == features.shape == (3, 8)
    torch.testing.assert_close(features.norm(dim=1), torch.full((3,), 5.0))
    assert model.input_size == (112, 96) and model.embedding_dim == 8


def test_checkpoint_paths_and_resolution(train_cfg, tmp_path):
    run = tmp_path / "r"
    train(train_cfg("iterations=2", run_dir=run))
    last = checkpoint_path(run)
    assert last == run / "checkpoints" / "last.pt" and last.exists()
    assert run_of_checkpoint(last) == run and run_of_checkpoint(tmp_path / "x.pt") is None
    assert resolve_checkpoint(str(run), tmp_path) == last
    assert resolve_checkpoint("latest", tmp_path) == last
    with pytest.raises(FacetrainError, match="no trained model"):
        resolve_checkpoint("latest", tmp_path / "empty")
    trained = load_embedder(last, "head")
    assert trained.iteration == 2 and trained.preprocessing.input_size == (112, 96)
    with pytest.raises(FacetrainError, match="embedding="):
        load_embedder(last, "loss")


def test_a_device_torch_does_not_know_is_one_line():
    with pytest.raises(FacetrainError, match="device=tpu is not a device; use auto, cpu, cuda or cuda:N"):
        pick_device("tpu")


def test_eval_embeds_a_model_the_way_it_was_trained(tiny_data, train_cfg, tmp_path):
    """A run trained with data.fit=crop at a square input is scored on centre crops, not squashed resizes."""
    import numpy as np
    from helpers import compose_config
    from hydra.utils import instantiate

    from facetrain.eval.features.embedder import embed_images
    from facetrain.eval.features.file import load_features

    run = tmp_path / "run"
    train(train_cfg("input_size=[48,48]", "data.fit=crop", "iterations=2", run_dir=run))
    trained = load_embedder(checkpoint_path(run))
    assert trained.preprocessing.fit == "crop" and trained.preprocessing.input_size == (48, 48)
    cfg = compose_config("eval", ["protocol=lfw", f"paths.data={tiny_data}", f"model={run}",
                                  f"run_dir={tmp_path / 'eval'}", "device=cpu", "progress=false", "num_workers=0"])
    instantiate(cfg.protocol.evaluate)(cfg)
    scored = load_features(tmp_path / "eval" / "features_lfw.npz")
    root = tiny_data / "synth" / "lfw"

    def embed(fit):
        return embed_images(trained.embedder, root, scored.paths, torch.device("cpu"), fit=fit, progress=False)

    np.testing.assert_allclose(scored.features, embed("crop"), rtol=1e-5, atol=1e-5)
    assert not np.allclose(scored.features, embed("resize"), rtol=1e-3, atol=1e-3)
