"""Validation while training: LFW-protocol scores of the current backbone, val/ scalars, best.pt."""

import json
import math
import pickle

import pytest
import torch
from bin_helpers import lfw_as_bin, write_py3_bin
from helpers import compose_config
from hydra.utils import instantiate
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from facetrain.errors import FacetrainError
from facetrain.eval.protocols.lfw import parse_lfw_pairs
from facetrain.train import train
from facetrain.train.hooks.validation import ValidationHook, first_pairs_per_fold, saved_best


def test_validation_logs_val_scalars_and_keeps_the_best_checkpoint(train_cfg, tmp_path):
    run = tmp_path / "r"
    metrics = train(train_cfg("iterations=4", "val.every=2", run_dir=run))
    assert 0 <= metrics["val/lfw/acc_mean"] <= 1 and metrics["val/lfw/pairs"] == 40
    best_iteration = metrics["val/best_iteration"]
    assert best_iteration in (2, 4) and metrics["val/best/lfw/acc_mean"] >= metrics["val/lfw/acc_mean"]
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["iteration"] == best_iteration
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    assert [s.step for s in events.Scalars("val/lfw/acc_mean")] == [2, 4]
    assert json.loads((run / "metrics.json").read_text())["val/best_iteration"] == best_iteration


def test_validation_on_a_subset_of_pairs(train_cfg, tmp_path):
    metrics = train(train_cfg("iterations=2", "val.every=2", "val.pairs_per_fold=1", run_dir=tmp_path / "r"))
    assert metrics["val/lfw/pairs"] == 20  # 10 folds x (1 matched + 1 mismatched)


def test_first_pairs_per_fold_keeps_the_folds_shape(tiny_data):
    pairs = parse_lfw_pairs(tiny_data / "synth" / "lfw" / "pairs.txt")
    small = first_pairs_per_fold(pairs, 1)
    assert len(small) == 2 * pairs.folds and small.per_fold == 1
    assert small.same.tolist() == [True, False] * pairs.folds and small.fold.tolist() == sorted(small.fold.tolist())
    assert small.left[0] == pairs.left[0] and small.left[1] == pairs.left[pairs.per_fold]


@pytest.mark.parametrize("override, message", [("val.pairs=/no/pairs.txt", "val.pairs"),
                                               ("val.metric=lfw/nothing", "val.metric")])
def test_bad_validation_settings_are_one_line_errors(train_cfg, tmp_path, override, message):
    with pytest.raises(FacetrainError, match=message):
        train(train_cfg("iterations=2", "val.every=2", override, run_dir=tmp_path / "r"))


def test_bin_sets_validate_with_eval_bins_keys_and_numbers(train_cfg, tiny_data, tmp_path):
    """The .bin of the LFW tree's own pairs scores what the tree does; the last validation is `eval bin` of last.pt."""
    lfw_bin = lfw_as_bin(tiny_data / "synth" / "lfw", tmp_path / "lfw_pairs.bin")
    run = tmp_path / "r"
    metrics = train(train_cfg("iterations=4", "val.every=2", f"val.sets=[{lfw_bin}]",
                              "val.metric=bin/lfw_pairs/acc_mean", run_dir=run))
    assert metrics["val/bin/lfw_pairs/acc_mean"] == metrics["val/lfw/acc_mean"]
    assert metrics["val/bin/lfw_pairs/pairs"] == 40 and "val/best/bin/lfw_pairs/acc_mean" in metrics
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["iteration"] == metrics["val/best_iteration"]
    cfg = compose_config("eval", ["protocol=bin", f"protocol.paths=[{lfw_bin}]", f"model={run}", "device=cpu",
                                  f"run_dir={tmp_path / 'eval'}", "progress=false", "num_workers=0", "cache=false"])
    scored = instantiate(cfg.protocol.evaluate)(cfg)
    assert {k: metrics[f"val/{k}"] for k in scored} == pytest.approx(scored)


def test_bin_sets_alone_keep_best_pt(train_cfg, tiny_data, tmp_path):
    data = pickle.loads(lfw_as_bin(tiny_data / "synth" / "lfw", tmp_path / "a.bin").read_bytes())
    cfp = write_py3_bin(tmp_path / "cfp_fp.bin", data[0], data[1])
    run = tmp_path / "r"
    metrics = train(train_cfg("iterations=2", "val.every=2", "val.root=null", f"val.sets=[{cfp}]",
                              "val.metric=bin/cfp_fp/auc", run_dir=run))
    assert not any(k.startswith("val/lfw/") for k in metrics) and 0 <= metrics["val/bin/cfp_fp/auc"] <= 1
    assert json.loads((run / "metrics.json").read_text())["val/best/bin/cfp_fp/auc"] == metrics["val/bin/cfp_fp/auc"]
    assert (run / "checkpoints" / "best.pt").is_file()
    events = EventAccumulator(str(run / "tb"))
    events.Reload()
    assert [s.step for s in events.Scalars("val/bin/cfp_fp/acc_mean")] == [2]


@pytest.mark.parametrize("overrides, message", [
    (["val.root=null"], "validation has nothing to score"),
    (["val.sets=[/no/cfp_fp.bin]"], "cfp_fp.bin"),
    (["val.metric=bin/nothing/acc_mean"], r"val.metric=bin/nothing/acc_mean is not one of"),
])
def test_bad_bin_validation_settings_are_one_line_errors(train_cfg, tmp_path, overrides, message):
    with pytest.raises(FacetrainError, match=message) as err:
        train(train_cfg("iterations=2", "val.every=2", *overrides, run_dir=tmp_path / "r"))
    assert "\n" not in str(err.value)


def _best(run):
    return torch.load(run / "checkpoints" / "best.pt", weights_only=True)


def _scoring(monkeypatch, value):
    """Validation scores `value` from now on (the real scoring is tested above)."""
    monkeypatch.setattr(ValidationHook, "_score", lambda self, backbone, device: {"lfw/acc_mean": value})


def test_best_pt_survives_a_resume_with_a_worse_validation(train_cfg, tmp_path, monkeypatch):
    run = tmp_path / "r"
    train(train_cfg("iterations=2", "val.every=2", run_dir=run))
    first = _best(run)
    assert first["iteration"] == 2 and first["val_best"]["metric"] == "lfw/acc_mean"
    assert first["val_best"]["value"] == json.loads((run / "metrics.json").read_text())["val/lfw/acc_mean"]
    _scoring(monkeypatch, first["val_best"]["value"] - 0.25)
    metrics = train(train_cfg("iterations=4", "val.every=2", "resume=true", run_dir=run))
    kept = _best(run)
    assert kept["iteration"] == 2 and kept["val_best"] == first["val_best"]
    for key, value in first["model"]["backbone"].items():
        assert torch.equal(kept["model"]["backbone"][key], value), key
    assert metrics["val/best_iteration"] == 2 and metrics["val/best/lfw/acc_mean"] == first["val_best"]["value"]
    _scoring(monkeypatch, first["val_best"]["value"] + 0.25)  # a better one still replaces it
    metrics = train(train_cfg("iterations=6", "val.every=2", "resume=true", run_dir=run))
    assert _best(run)["iteration"] == 6 and metrics["val/best_iteration"] == 6
    assert _best(run)["val_best"]["value"] == metrics["val/best/lfw/acc_mean"] == first["val_best"]["value"] + 0.25


def test_saved_best_reads_older_best_pt_from_metrics_json_and_ignores_another_metric(train_cfg, tmp_path):
    run = tmp_path / "r"
    metrics = train(train_cfg("iterations=2", "val.every=2", run_dir=run))
    assert saved_best(run, "lfw/auc") == saved_best(tmp_path / "no_run", "lfw/acc_mean")  # nothing to beat
    assert saved_best(run, "lfw/auc").value == -math.inf
    older = {k: v for k, v in _best(run).items() if k != "val_best"}  # as written before best.pt had its score
    torch.save(older, run / "checkpoints" / "best.pt")
    best = saved_best(run, "lfw/acc_mean")
    assert (best.value, best.iteration) == (metrics["val/lfw/acc_mean"], 2)
    (run / "checkpoints" / "best.pt").write_bytes(b"")
    with pytest.raises(FacetrainError, match="cut short or damaged\\); it is the run's best.pt so far: move it away"):
        saved_best(run, "lfw/acc_mean")  # it suggested an .onnx model
