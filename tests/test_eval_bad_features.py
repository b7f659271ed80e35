"""Features no protocol can score (NaN/inf, all zero, all alike) are refused in one line; some zero rows are logged."""

import json
import logging

import numpy as np
import pytest
import torch
from helpers import compose_config, run_cli, tiny_train_overrides
from hydra.utils import instantiate

from facetrain.errors import FacetrainError
from facetrain.eval.features.checks import check_features
from facetrain.eval.features.file import Features, load_features, save_features
from facetrain.eval.protocols.lfw import parse_lfw_pairs


@pytest.fixture
def lfw_features(tiny_data, tmp_path):
    """A factory: a features file with a seeded random row for each image of the tiny LFW pairs, then `spoil`ed."""
    paths = list(parse_lfw_pairs(tiny_data / "synth" / "lfw" / "pairs.txt").images)  # in the protocol's order

    def make(spoil, name: str = "features.npz") -> tuple:
        features = np.random.default_rng(0).normal(size=(len(paths), 8)).astype(np.float32)
        spoil(features)
        path = tmp_path / name
        save_features(path, features, paths)
        return path, paths

    return make


def _eval_features(tmp_path, tiny_data, path):
    return run_cli("eval", "lfw", f"features={path}", "hydra.run.dir=out", cwd=tmp_path,
                   env={"FACETRAIN_DATA": str(tiny_data)}, check=False)


def _eval_in_process(tmp_path, tiny_data, path):
    cfg = compose_config("eval", ["protocol=lfw", f"paths.data={tiny_data}", f"features={path}",
                                  f"run_dir={tmp_path / 'out'}", "progress=false", "plots=false"])
    return instantiate(cfg.protocol.evaluate)(cfg)


def _one_error_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("facetrain: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def _nan_rows(f):
    f[[3, 5]] = np.nan
    f[7, 0] = np.inf


def test_nan_and_inf_rows_are_refused_naming_file_count_and_first_path(lfw_features, tmp_path, tiny_data):
    path, paths = lfw_features(_nan_rows)
    line = _one_error_line(_eval_features(tmp_path, tiny_data, path))
    assert str(path) in line and f"NaN or inf in 3 of the {len(paths)} rows" in line
    assert f"(first: {paths[3]})" in line and "re-create it" in line


def test_all_equal_features_are_refused(lfw_features, tmp_path, tiny_data):
    path, paths = lfw_features(lambda f: f.__setitem__(slice(None), f[0]))
    line = _one_error_line(_eval_features(tmp_path, tiny_data, path))
    assert str(path) in line and f"all {len(paths)} rows the protocol uses are identical up to scale" in line
    assert "every pair would get the same score" in line


def test_a_file_of_pickled_objects_is_refused_without_advice_to_unpickle_it(tmp_path):
    path = tmp_path / "features.npz"
    np.savez(path, features=np.zeros((2, 3), np.float32), paths=np.array(["a.jpg", None], dtype=object))
    with pytest.raises(FacetrainError, match="it holds pickled objects, not plain arrays.*an .npz of arrays") as err:
        load_features(path)
    assert "allow_pickle" not in str(err.value)  # numpy's message suggests loading it unsafely


def test_all_zero_features_are_refused(lfw_features, tmp_path, tiny_data):
    path, paths = lfw_features(lambda f: f.__setitem__(slice(None), 0.0))
    with pytest.raises(FacetrainError, match=f"all {len(paths)} rows the protocol uses are zero vectors; re-create"):
        _eval_in_process(tmp_path, tiny_data, path)


def test_some_zero_rows_are_counted_in_a_warning_and_scored(lfw_features, tmp_path, tiny_data, caplog):
    path, paths = lfw_features(lambda f: f.__setitem__([2, 4], 0.0))
    with caplog.at_level(logging.WARNING):
        metrics = _eval_in_process(tmp_path, tiny_data, path)
    assert f"2 of the {len(paths)} rows the protocol uses are zero vectors (first: {paths[2]})" in caplog.text
    assert 0 <= metrics["lfw/acc_mean"] <= 1


def test_rows_that_differ_only_in_scale_count_as_alike():
    rows = np.outer([1.0, 2.0, 0.5, 0.0], [0.3, -0.2, 0.9]).astype(np.float32)
    with pytest.raises(FacetrainError, match=r"identical up to scale or zero \(1 rows\)"):
        check_features(Features(rows, ["a", "b", "c", "d"]), "x", "fix it")


def test_distinct_rows_pass_and_a_zero_row_is_logged(caplog):
    rows = np.eye(3, dtype=np.float32)
    rows[1] = 0
    with caplog.at_level(logging.WARNING):
        check_features(Features(rows, ["a", "b", "c"]), "x", "fix it")
    assert "1 of the 3 rows the protocol uses are zero vectors (first: b)" in caplog.text


def test_a_model_whose_features_collapsed_is_refused(tiny_data, tmp_path):
    from facetrain.train import train

    run = tmp_path / "run"
    train(compose_config("train", tiny_train_overrides(tiny_data, run) + ["iterations=2"]))
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=False)
    state["model"]["backbone"] = {k: torch.zeros_like(v) for k, v in state["model"]["backbone"].items()}
    torch.save(state, run / "checkpoints" / "last.pt")
    cfg = compose_config("eval", ["protocol=lfw", f"paths.data={tiny_data}", f"model={run}", f"run_dir={tmp_path / 'e'}",
                                  "device=cpu", "progress=false", "num_workers=0", "cache=false"])
    with pytest.raises(FacetrainError, match="the features of .*last.pt: all .* zero vectors; the model has diverged"):
        instantiate(cfg.protocol.evaluate)(cfg)


def test_an_eval_sweep_reports_the_bad_features_file_and_scores_the_good_one(lfw_features, tmp_path, tiny_data):
    lfw_features(_nan_rows, "nan.npz")
    lfw_features(lambda f: None, "good.npz")
    proc = run_cli("eval", "lfw", "-m", "features=nan.npz,good.npz", "hydra.sweep.dir=sweep", "plots=false",
                   cwd=tmp_path, env={"FACETRAIN_DATA": str(tiny_data)}, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    jobs = [ln for ln in proc.stderr.splitlines() if ln.startswith("facetrain: job ")]
    assert len(jobs) == 1 and jobs[0].startswith("facetrain: job 0 (features=nan.npz) failed: features file nan.npz")
    (good,) = (tmp_path / "sweep").glob("1_*")
    metrics = json.loads((good / "metrics.json").read_text())
    assert metrics["status"] == "completed" and 0 <= metrics["lfw/acc_mean"] <= 1
