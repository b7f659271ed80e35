"""logger=mlflow: a run's params, metrics and artifacts read back through MLflow's own client (a two-step run with
validation, then `facetrain report` with eval=lfw on it; a two-job sweep as a parent with two children); an
unreachable tracker costs one warning line; TensorBoard stays the default and both loggers can run at once."""

import json
import logging

import pytest
from helpers import compose_config, run_cli

from facetrain.export import export_from_config
from facetrain.report import build_report
from facetrain.report.compose import compose_primary
from facetrain.tracking.values import flat_params, metric_name
from facetrain.train.hooks import MlflowHook, TensorBoardHook
from facetrain.train.trainer import loggers

SHRINK = ["device=cpu", "iterations=2", "batch_size=8", "log_every=1", "data.num_workers=0", "progress=false",
          "embedding_dim=16", "backbone.channels=[4,8,8,16]", "hydra.sweep.dir=sweep"]


def _client(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


@pytest.mark.parametrize(("choice", "hooks"), [([], [TensorBoardHook]), (["logger=mlflow"], [MlflowHook]),
                                                (["logger=[tensorboard,mlflow]"], [TensorBoardHook, MlflowHook]),
                                                (["logger=[]"], [])])
def test_tensorboard_is_the_default_logger_and_both_can_run(choice, hooks):
    assert [type(h) for h in loggers(compose_config("train", choice))] == hooks


def test_names_and_params_are_what_mlflow_accepts():
    assert metric_name("ijba/tar@far=0.001_mean") == "ijba/tar_at_far_0.001_mean"
    assert metric_name("val/lfw/acc_mean") == "val/lfw/acc_mean"
    params = flat_params(compose_config("train", ["loss=arcface", "run_dir=x"]))
    assert params["loss.margin"] == "0.5" and params["alpha"] == "16" and params["input_size"] == "[112, 96]"
    assert params["logger.tensorboard._target_"] == "facetrain.train.hooks.TensorBoardHook"
    assert not any(k.startswith("hydra") for k in params)


def _train_tracked(train_cfg, tmp_path, uri):
    """A two-step run with a validation, logged to TensorBoard and MLflow: (its directory, its link, the client)."""
    from facetrain.train import train

    run_dir = tmp_path / "run"
    train(train_cfg("logger=[tensorboard,mlflow]", f"logger.mlflow.tracking_uri={uri}", "val.every=2",
                    "iterations=2", "log_every=1", "loss=l2softmax", run_dir=run_dir))
    link = json.loads((run_dir / "mlflow.json").read_text())
    return run_dir, link, _client(uri)


def test_a_two_step_run_is_in_mlflow(train_cfg, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_dir, link, client = _train_tracked(train_cfg, tmp_path, uri)
    assert link["tracking_uri"] == uri and any((run_dir / "tb").iterdir())  # and TensorBoard's
    run = client.get_run(link["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "run"
    assert run.data.params["alpha"] == "16" and run.data.params["iterations"] == "2"
    assert run.data.params["loss._target_"] == "facetrain.losses.SoftmaxLoss"
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train/loss")] == [1, 2]
    (val,) = client.get_metric_history(run.info.run_id, "val/lfw/acc_mean")
    assert val.step == 2 and val.value == pytest.approx(metrics["val/lfw/acc_mean"])
    assert run.data.metrics["train/loss"] == pytest.approx(metrics["train/loss"])


@pytest.mark.slow
def test_eval_and_report_on_the_run_join_its_mlflow_run(train_cfg, tmp_path, tiny_data, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_dir, link, client = _train_tracked(train_cfg, tmp_path, uri)
    (run_dir / "calibration.json").write_text('{"threshold": 0.3}\n')  # another command's result file, if present
    monkeypatch.setenv("FACETRAIN_DATA", str(tiny_data))
    build_report(compose_primary("report", [f"dirs=[{run_dir}]", "eval=lfw", "eval_overrides=['num_workers=0']",
                                            "plots.quality_norms=null", "plots.weight_norms=null"]))
    run = client.get_run(link["run_id"])
    lfw = json.loads((run_dir / "metrics.json").read_text())["lfw/acc_mean"]
    assert run.data.metrics["lfw/acc_mean"] == pytest.approx(lfw) and "lfw/tar_at_far_0.001" in run.data.metrics
    artifacts = {a.path for folder in ("", "eval", "report") for a in client.list_artifacts(run.info.run_id, folder)}
    assert {"calibration.json", "eval/roc_lfw.png", "report/report.md", "report/report.csv"} <= artifacts
    assert (tmp_path / "mlartifacts" / link["run_id"] / "artifacts" / "eval" / "roc_lfw.png").is_file()  # beside the db
    export_from_config(compose_config("export", [f"model={run_dir}", "format=torchscript"]))  # and its model card
    assert "export/backbone.pt.json" in {a.path for a in client.list_artifacts(run.info.run_id, "export")}


def test_an_unreachable_tracker_is_one_warning_and_training_goes_on(train_cfg, tmp_path, caplog):
    from facetrain.train import train

    run_dir = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        metrics = train(train_cfg("logger=[tensorboard,mlflow]", "logger.mlflow.tracking_uri=http://127.0.0.1:9",
                                  run_dir=run_dir))
    assert metrics["train/iterations"] == 4 and (run_dir / "checkpoints" / "last.pt").is_file()
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING and "MLflow" in r.getMessage()]
    assert len(warnings) == 1 and "http://127.0.0.1:9" in warnings[0] and "\n" not in warnings[0]
    assert not (run_dir / "mlflow.json").exists()
    caplog.clear()
    with caplog.at_level(logging.WARNING):  # it said to fix tracking_uri
        hook = MlflowHook(f"sqlite:///{tmp_path / 'mlflow.db'}", experiment="")
        hook.on_start(None)
    assert hook.store is None and [r.getMessage() for r in caplog.records] == [
        "MLflow: this run not tracked: logger.mlflow.experiment='' names no experiment; the run itself goes on - "
        "set logger.mlflow.experiment=NAME (created when missing)"]


@pytest.mark.slow
def test_a_two_job_sweep_is_a_parent_run_with_two_children(tmp_path, tiny_data):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_cli("train", "-m", "loss=l2softmax", "alpha=8,16", "logger=mlflow", f"logger.mlflow.tracking_uri={uri}",
            "hydra.callbacks.report.overrides=['plots.quality_norms=null','plots.weight_norms=null']", *SHRINK,
            cwd=tmp_path, env={"FACETRAIN_DATA": str(tiny_data)})
    sweep = tmp_path / "sweep"
    parent_id = json.loads((sweep / "mlflow.json").read_text())["run_id"]
    client = _client(uri)
    parent = client.get_run(parent_id)
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/jobs"] == 2
    assert parent.data.metrics["sweep/best/val/best/lfw/acc_mean"] == max(
        json.loads((d / "metrics.json").read_text())["val/best/lfw/acc_mean"] for d in sweep.iterdir() if d.is_dir())
    assert {"report/report.md", "report/report.csv"} <= {a.path for a in client.list_artifacts(parent_id, "report")}
    children = client.search_runs([parent.info.experiment_id], f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(c.data.params["alpha"] for c in children) == ["16", "8"]
    for child in children:  # each job's directory links to its child run
        job_dir = tmp_path / child.data.tags["facetrain.run_dir"]
        assert job_dir.parent == sweep and json.loads((job_dir / "mlflow.json").read_text())["run_id"] == child.info.run_id
        assert child.info.status == "FINISHED" and child.data.metrics["train/alpha"] == float(child.data.params["alpha"])
        assert "val/lfw/acc_mean" in child.data.metrics
