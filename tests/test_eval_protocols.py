"""`facetrain eval lfw|blufr|ytf|ijba` end to end on synthetic trees: a model, a features file, the cache, bad input."""

import json
import shutil

import numpy as np
import pytest
from helpers import TINY_SPEC, compose_config, run_cli, tiny_train_overrides
from hydra.utils import instantiate

from facetrain.data.synth import SynthSpec, write_synthetic_data
from facetrain.errors import FacetrainError
from facetrain.eval.features.file import save_features

SPEC = SynthSpec(**(TINY_SPEC.__dict__ | dict(
    blufr_trials=3, ytf_splits=10, ytf_pairs_per_split=2, ytf_identities_per_split=3, ytf_max_videos=3,
    ytf_frames=3, ijba_splits=2, ijba_subjects=12, ijba_templates=2, ijba_impostor_ratio=3)))
HEADLINE = {"lfw": "lfw/acc_mean", "blufr": "blufr/vr@far=0.001_mean", "ytf": "ytf/acc_mean",
            "ijba": "ijba/tar@far=0.01_mean"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Synthetic casia/lfw/blufr/ytf/ijba trees and a model trained for a few iterations on them."""
    from facetrain.train import train

    root = tmp_path_factory.mktemp("evaldata")
    write_synthetic_data(root / "synth", SPEC, workers=2)
    run = root / "run"
    train(compose_config("train", tiny_train_overrides(root, run)))
    return root, run


def _evaluate(env, out, protocol, *overrides):
    root, run = env
    cfg = compose_config("eval", [f"protocol={protocol}", f"paths.data={root}", f"model={run}", f"run_dir={out}",
                                  "device=cpu", "progress=false", "num_workers=0", *overrides])
    return instantiate(cfg.protocol.evaluate)(cfg)


@pytest.mark.parametrize("protocol", ["lfw", "blufr", "ytf", "ijba"])
def test_protocol_end_to_end_then_from_its_features_file(env, tmp_path, protocol, capsys):
    metrics = _evaluate(env, tmp_path / "a", protocol)
    assert 0 <= metrics[HEADLINE[protocol]] <= 1
    assert all(isinstance(v, float) for v in metrics.values())
    assert (tmp_path / "a" / f"roc_{protocol}.png").stat().st_size > 1000
    written = json.loads((tmp_path / "a" / "metrics.json").read_text())
    assert written[HEADLINE[protocol]] == pytest.approx(metrics[HEADLINE[protocol]])
    trained = json.loads((env[1] / "metrics.json").read_text())  # the model's run gains the numbers
    assert HEADLINE[protocol] in trained and "train/loss" in trained
    assert list((env[1] / "tb").glob("events.*"))
    again = _evaluate(env, tmp_path / "b", protocol, f"features={tmp_path / 'a' / f'features_{protocol}.npz'}")
    assert again[HEADLINE[protocol]] == pytest.approx(metrics[HEADLINE[protocol]])
    out = capsys.readouterr().out
    assert {"lfw": "LFW", "blufr": "μ − σ", "ytf": "HIK-SVM", "ijba": "Rank=10"}[protocol] in out


def test_cache_serves_a_second_protocol_and_a_rerun(env, tmp_path, capsys):
    _evaluate(env, tmp_path / "a", "blufr", f"cache_dir={tmp_path / 'cache'}", "protocol.pca=2")  # + train images
    assert "0 from the cache" in capsys.readouterr().out
    _evaluate(env, tmp_path / "b", "lfw", f"cache_dir={tmp_path / 'cache'}")  # LFW's images are BLUFR's subset
    assert "0 embedded now" in capsys.readouterr().out
    _evaluate(env, tmp_path / "c", "lfw", f"cache_dir={tmp_path / 'cache'}", "mirror=none")  # another key
    assert "0 from the cache" in capsys.readouterr().out


def test_lfw_options_and_norm_sets(env, tmp_path):
    cos = _evaluate(env, tmp_path / "a", "lfw", "protocol.metric=cosine")
    euc = _evaluate(env, tmp_path / "b", "lfw", "protocol.metric=euclidean", "analysis.norm_sets=3")
    assert euc["lfw/acc_mean"] == cos["lfw/acc_mean"] and euc["lfw/auc"] == pytest.approx(cos["lfw/auc"])
    assert {"lfw/norm_sets/1-1/acc", "lfw/norm_sets/2-3/acc", "lfw/norm_sets/3-3/pairs"} <= set(euc)
    assert sum(euc[f"lfw/norm_sets/{k}/pairs"] for k in ("1-1", "1-2", "1-3", "2-2", "2-3", "3-3")) == 40
    ijba = _evaluate(env, tmp_path / "d", "ijba", "analysis.norm_sets=3", "protocol.pooling=mean")
    assert "ijba/norm_sets/1-3/tar@far=0.1_mean" in ijba


def _drop(features_file, out, keep):
    data = np.load(features_file)
    rows = [i for i, p in enumerate(data["paths"]) if keep(str(p))]
    save_features(out, data["features"][rows], [str(p) for p in data["paths"][rows]])
    return out


def test_features_file_missing_images(env, tmp_path):
    _evaluate(env, tmp_path / "a", "lfw")
    first = str(np.load(tmp_path / "a" / "features_lfw.npz")["paths"][0])
    partial = _drop(tmp_path / "a" / "features_lfw.npz", tmp_path / "partial.npz", lambda p: p != first)
    with pytest.raises(FacetrainError, match=f"1 of the .* are not in the features file.*{first}"):
        _evaluate(env, tmp_path / "b", "lfw", f"features={partial}")
    m = _evaluate(env, tmp_path / "c", "lfw", f"features={partial}", "allow_missing=true")
    assert m["lfw/pairs_dropped"] >= 1 and m["lfw/pairs"] == 40 - m["lfw/pairs_dropped"]


def test_ijba_template_without_usable_face(env, tmp_path):
    root, _ = env
    _evaluate(env, tmp_path / "a", "ijba")
    meta = (root / "synth" / "ijba" / "IJB-A_11_sets" / "split1" / "verify_metadata_1.csv").read_text().splitlines()
    template = meta[1].split(",")[0]
    files = {r.split(",")[2] for r in meta[1:] if r.split(",")[0] == template}
    partial = _drop(tmp_path / "a" / "features_ijba.npz", tmp_path / "partial.npz", lambda p: p not in files)
    with pytest.raises(FacetrainError, match=r"verify_metadata_1.csv:\d+: \d+ of the .* not in the features file"):
        _evaluate(env, tmp_path / "b", "ijba", f"features={partial}")
    m = _evaluate(env, tmp_path / "c", "ijba", f"features={partial}", "allow_missing=true")
    assert m["ijba/templates_dropped"] >= 1 and m["ijba/pairs_dropped"] >= 1


def test_missing_video_on_the_command_line_then_allowed(env, tmp_path):
    root, run = env
    ytf = tmp_path / "ytf"
    shutil.copytree(root / "synth" / "ytf", ytf)
    video = (ytf / "splits.txt").read_text().splitlines()[1].split(", ")[2]
    shutil.rmtree(ytf / "frame_images_DB" / video)
    proc = run_cli("eval", "ytf", f"data.root={ytf}", f"model={run}", "device=cpu", "num_workers=0",
                   "progress=false", f"hydra.run.dir={tmp_path / 'o'}", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and f"splits.txt:2: video {video} has no frames" in proc.stderr
    m = _evaluate(env, tmp_path / "o2", "ytf", f"data.root={ytf}", "allow_missing=true")
    assert m["ytf/pairs_dropped"] >= 1 and m["ytf/pairs"] == 40 - m["ytf/pairs_dropped"]
