"""`facetrain report`: every job of a sweep in one table (failures with their reason), report.md/.csv, and the
metric-against-alpha plot (Ranjan et al. 2017, fig. 7) checked through the data it drew."""

import csv
import json
import math

import pytest
import yaml
from helpers import run_cli
from omegaconf import OmegaConf

from facetrain.errors import FacetrainError
from facetrain.report import build_report
from facetrain.report.callback import ReportCallback
from facetrain.report.compose import compose_primary

SHRINK = ["device=cpu", "iterations=2", "batch_size=8", "log_every=1", "data.num_workers=0", "progress=false",
          "embedding_dim=16", "backbone.channels=[4,8,8,16]", "val.every=0", "hydra.sweep.dir=sweep"]


def _report(*overrides: str):
    return build_report(compose_primary("report", list(overrides)))


def _fake_run(path, num, overrides, metrics, status="completed", reason="", loss="l2softmax"):
    """A run directory as a sweep job leaves it: .hydra/, metrics.json, status.json."""
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))
    hydra = {"hydra": {"job": {"num": num}, "overrides": {"task": overrides}, "runtime": {"choices": {"loss": loss}}}}
    (path / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (path / "metrics.json").write_text(json.dumps(metrics | {"status": status, "status_reason": reason}))
    (path / "status.json").write_text(json.dumps({"status": status, "reason": reason}))
    return path


@pytest.fixture
def fake_sweep(tmp_path):
    """An alpha sweep with a softmax job, a diverged job and alpha=auto; 10 classes (eq. 9: log(0.9 * 8 / 0.1))."""
    sweep = tmp_path / "sweep"
    lfw = {"2": 0.80, "8": 0.91, "32": 0.88}
    for num, alpha in enumerate(["2", "8", "32"]):
        _fake_run(sweep / f"{num}_alpha={alpha}", num, ["loss=l2softmax", f"alpha={alpha}"],
                  {"train/loss": 1.0 + num, "lfw/acc_mean": lfw[alpha], "lfw/acc_std": 0.01, "train/num_classes": 10}
                  | ({"lfw/acc_stderr": 0.002} if alpha == "2" else {}))
    _fake_run(sweep / "3_alpha=16", 3, ["loss=l2softmax", "alpha=16"], {"train/loss": None}, "diverged",
              "the loss was not finite for 3 windows in a row; lower the learning rate")
    _fake_run(sweep / "4_alpha=auto", 4, ["loss=l2softmax", "alpha=auto"],
              {"lfw/acc_mean": 0.9, "train/alpha": 4.2767, "train/num_classes": 10})
    _fake_run(sweep / "5_loss=softmax", 5, ["loss=softmax", "alpha=8"], {"lfw/acc_mean": 0.85}, loss="softmax")
    return sweep


def test_report_of_a_fabricated_sweep(fake_sweep, capsys):
    report = _report(f"dirs=[{fake_sweep}]")
    assert [r.name for r in report.runs] == ["0", "1", "2", "3", "4", "5"]
    out = capsys.readouterr().out
    assert "6 runs from" in out and "1 diverged" in out and "lower the learning rate" in out
    assert "91.00 ± 1.00" in report.table and report.table.count("\n") == 7  # header, rule, 6 jobs
    md = report.markdown.read_text()
    assert md.count("\n| ") == 8 and "lower the learning rate" in md and "lfw_acc_mean_vs_alpha.png" in md

    (plot,) = report.plots
    assert plot.path.is_file() and plot.path.name == "lfw_acc_mean_vs_alpha.png"
    assert plot.series == {"l2softmax": ([2.0, 8.0, 32.0], [80.0, 91.0, 88.0])}  # the diverged job has no point
    assert plot.points == {"alpha=auto": (4.2767, 90.0)}  # drawn at the alpha the run used
    assert plot.hlines == {"softmax (job 5)": 85.0}
    assert plot.errors == {"l2softmax": [pytest.approx(0.2), 0.0, 0.0]}  # lfw/acc_stderr where the run logged it
    assert list(plot.vlines.values()) == [pytest.approx(math.log(0.9 * 8 / 0.1))]
    assert any("job 3 (diverged)" in note for note in plot.notes)


def test_csv_parses_and_matches_the_metrics(fake_sweep):
    report = _report(f"dirs=[{fake_sweep}]", f"out={fake_sweep.parent / 'out'}")
    assert report.csv == fake_sweep.parent / "out" / "report.csv"
    rows = list(csv.DictReader(report.csv.open()))
    assert [r["job"] for r in rows] == ["0", "1", "2", "3", "4", "5"]
    for row in rows:
        metrics = json.loads((fake_sweep.parent / row["dir"] / "metrics.json").read_text())
        assert row["status"] == metrics["status"] and row["reason"] == metrics["status_reason"]
        for key, value in metrics.items():
            if key not in ("status", "status_reason"):
                assert row[key] == ("" if value is None else str(value)), key
        assert row["alpha"] == yaml.safe_load((fake_sweep / row["dir"] / ".hydra/overrides.yaml").read_text()
                                              )[1].split("=")[1]
    assert rows[3]["status"] == "diverged" and rows[3]["lfw/acc_mean"] == ""


def test_words_on_a_numeric_axis_are_listed_in_the_table_only(tmp_path):
    sweep = tmp_path / "sweep"
    _fake_run(sweep / "0", 0, ["alpha=8"], {"lfw/acc_mean": 0.9})
    _fake_run(sweep / "1", 1, ["alpha=trained"], {"lfw/acc_mean": 0.8})  # no train/alpha: nowhere to draw it
    report = _report(f"dirs=[{sweep}]")
    (plot,) = report.plots
    assert plot.series == {"l2softmax": ([8.0], [90.0])} and not plot.points
    assert report.table.splitlines()[0].split() == ["job", "alpha", "status", "lfw", "acc", "%", "(mean", "±", "std)",
                                                    "wall", "s"]  # every job completed: no reason column
    assert plot.notes == ["alpha=trained is not a number: listed in the table only"]


def test_an_axis_of_words_is_categorical_and_baseline_and_metric_are_chosen(tmp_path):
    sweep, base = tmp_path / "sweep", tmp_path / "soft"
    _fake_run(sweep / "0", 0, ["loss=normface"], {"train/acc": 0.5, "ytf/acc_mean": 0.7}, loss="normface")
    _fake_run(sweep / "1", 1, ["loss=ring"], {"train/acc": 0.6, "ytf/acc_mean": 0.75}, loss="ring")
    _fake_run(base, 0, ["loss=softmax"], {"train/acc": 0.4, "ytf/acc_mean": 0.6}, loss="softmax")
    report = _report(f"dirs=[{sweep}]", f"baseline={base}", "metric=[ytf/acc_mean,train/loss]")
    ytf, loss = report.plots
    assert ytf.series == {"ytf/acc_mean": ([0.0, 1.0], [70.0, 75.0])} and ytf.hlines == {"softmax (baseline soft)": 60.0}
    assert not ytf.vlines and ytf.path.name == "ytf_acc_mean_vs_loss.png"
    assert loss.series == {} and loss.notes == ["job 0 (completed) has no train/loss", "job 1 (completed) has no train/loss",
                                                "baseline soft has no train/loss: no line for it (score it alike, "
                                                "e.g. eval=lfw, or choose metric=)"]
    assert report.runs[-1].name == "baseline soft" and "baseline soft" in report.table


def test_bad_input_is_one_sentence(tmp_path):
    with pytest.raises(FacetrainError, match="is not a directory"):
        _report(f"dirs=[{tmp_path / 'nope'}]")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FacetrainError, match="holds no runs"):
        _report(f"dirs=[{tmp_path / 'empty'}]")
    _fake_run(tmp_path / "bad", 0, ["alpha=8"], {})
    (tmp_path / "bad" / "metrics.json").write_text("{not json")
    with pytest.raises(FacetrainError, match="metrics.json is not valid JSON"):
        _report(f"dirs=[{tmp_path / 'bad'}]")
    good = _fake_run(tmp_path / "good", 0, ["alpha=8"], {"train/acc": 0.5})
    with pytest.raises(FacetrainError, match="x=aplha: no run sets it .* one the runs vary: none varies"):
        _report(f"dirs=[{good}]", "x=aplha")  # a misspelt axis drew a plot of '(not set)'
    with pytest.raises(FacetrainError, match="analysis_samples=-1 must be an integer >= 1"):
        _report(f"dirs=[{good}]", "analysis_samples=-1")
    (tmp_path / "notes.txt").write_text("a file")
    with pytest.raises(FacetrainError, match="notes.txt is a file; give a folder"):
        _report(f"dirs=[{good}]", f"out={tmp_path / 'notes.txt'}")
    assert not (good / "report.md").exists()


def test_a_report_failure_is_one_line_and_never_raises(tmp_path, capsys):
    _fake_run(tmp_path / "sweep" / "0", 0, ["alpha=8"], {})
    (tmp_path / "sweep" / "0" / "metrics.json").write_text("{not json")
    config = OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path / "sweep")}}})
    ReportCallback().on_multirun_end(config)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("facetrain: no sweep report (") and "not valid JSON" in err[0]
    ReportCallback(enabled=False).on_multirun_end(config)
    assert capsys.readouterr().err == ""


@pytest.mark.slow
def test_a_real_sweep_ends_with_its_report_then_eval_fills_lfw(tmp_path, tiny_data):
    """`facetrain train -m` with a failing job: report table, then the failure lines, exit status 1 as before;
    `facetrain report SWEEP eval=lfw` then scores the completed job on the LFW protocol."""
    env = {"FACETRAIN_DATA": str(tiny_data)}
    proc = run_cli("train", "-m", "loss=l2softmax", "alpha=-1,auto", *SHRINK, cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert "facetrain: job 0 (alpha=-1) failed: alpha=-1 must be > 0" in proc.stderr
    assert "facetrain: no sweep report" not in proc.stderr
    sweep = tmp_path / "sweep"
    md = (sweep / "report.md").read_text()
    assert "| 0 | -1 | failed |" in md and "alpha=-1 must be > 0" in md and "| 1 | auto | completed |" in md
    assert (sweep / "train_acc_vs_alpha.png").is_file()  # no LFW numbers yet: training accuracy

    out = run_cli("report", "sweep", "eval=lfw", "eval_overrides=['num_workers=0']", cwd=tmp_path, env=env).stdout
    job = json.loads(next(sweep.glob("1_*/metrics.json")).read_text())
    assert 0 <= job["lfw/acc_mean"] <= 1 and job["lfw/pairs"] == 40 and "lfw_acc_mean_vs_alpha.png" in out
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [r["lfw/acc_mean"] for r in rows] == ["", str(job["lfw/acc_mean"])]


def test_eval_lfw_fills_protocol_metrics_of_a_run_that_had_none(train_cfg, tmp_path, tiny_data, monkeypatch):
    from facetrain.train import train

    run = tmp_path / "run"
    train(train_cfg("loss=l2softmax", "alpha=auto", run_dir=run))
    assert not any(k.startswith("lfw/") for k in json.loads((run / "metrics.json").read_text()))
    monkeypatch.setenv("FACETRAIN_DATA", str(tiny_data))
    report = _report(f"dirs=[{run}]", "eval=lfw", "eval_overrides=['num_workers=0']", "x=alpha")
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["lfw/acc_mean"] <= 1 and metrics["lfw/pairs"] == 40 and (run / "eval_lfw" / "roc_lfw.png").is_file()
    assert report.runs[0].number("lfw/acc_mean") == metrics["lfw/acc_mean"] and "lfw acc %" in report.table
    (plot,) = [p for p in report.plots if p.path.name.startswith("lfw_acc_mean")]  # not the checkpoint analyses
    bound = math.log(0.9 * (6 - 2) / 0.1)  # eq. 9 for the tiny tree's 6 training identities
    assert plot.series == {"lfw/acc_mean": ([pytest.approx(bound, rel=1e-6)], [100 * metrics["lfw/acc_mean"]])}
    assert list(plot.vlines.values()) == [pytest.approx(bound)] and not plot.points  # no override: the alpha it logged
    assert plot.path.name == "lfw_acc_mean_vs_alpha.png"


def test_cli_positional_dirs_become_the_dirs_key(tmp_path):
    from facetrain.cli import _to_hydra_args

    job = tmp_path / "0_alpha=16,loss=l2softmax"
    job.mkdir()
    assert _to_hydra_args("report", [str(job), "x=alpha", "runs/a", "--cfg", "job"]) == [
        "x=alpha", "--cfg", "job", f"dirs=['{job}','runs/a']"]


def test_the_curve_plots_the_metric_its_runs_have_not_the_baselines(tmp_path):
    """A sweep validated while training (val/lfw/...) against a softmax run scored by `facetrain eval lfw`."""
    sweep, base = tmp_path / "sweep", tmp_path / "soft"
    _fake_run(sweep / "0", 0, ["alpha=4"], {"val/lfw/acc_mean": 0.904})
    _fake_run(sweep / "1", 1, ["alpha=32"], {"val/lfw/acc_mean": 0.562, "train/acc": 0.003})
    _fake_run(sweep / "2", 2, ["alpha=8"], {"train/acc": 0.5})
    _fake_run(base, 0, ["loss=softmax"], {"lfw/acc_mean": 0.8205, "train/acc": 0.17}, loss="softmax")
    (plot,) = _report(f"dirs=[{sweep}]", f"baseline={base}").plots  # train/acc: in 2 runs, but not a protocol's
    assert plot.path.name == "val_lfw_acc_mean_vs_alpha.png"
    assert plot.series == {"l2softmax": ([4.0, 32.0], [pytest.approx(90.4), pytest.approx(56.2)])}
    assert not plot.hlines and plot.notes == [
        "job 2 (completed) has no val/lfw/acc_mean",
        "baseline soft has no val/lfw/acc_mean: no line for it (score it alike, e.g. eval=lfw, or choose metric=)"]


def test_eval_lfw_scores_a_run_on_the_data_it_was_trained_with(train_cfg, tmp_path, tiny_data, monkeypatch):
    """A run made with paths.data=DIR is scored on DIR's LFW tree, not the default data directory's."""
    from facetrain.train import train

    run = tmp_path / "run"
    train(train_cfg(run_dir=run))  # the fixture trains with paths.data=<tiny_data>
    (run / ".hydra").mkdir(exist_ok=True)
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump([f"paths.data={tiny_data}", "alpha=8"]))
    monkeypatch.setenv("FACETRAIN_DATA", str(tmp_path / "elsewhere"))  # the default has no LFW tree
    _report(f"dirs=[{run}]", "eval=lfw", "eval_overrides=['num_workers=0']")
    assert json.loads((run / "metrics.json").read_text())["lfw/pairs"] == 40
    (run / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(["alpha=8"]))  # trained on the default data
    (run / "eval_lfw").rename(tmp_path / "first_eval")
    metrics = json.loads((run / "metrics.json").read_text())
    (run / "metrics.json").write_text(json.dumps({k: v for k, v in metrics.items() if not k.startswith("lfw/")}))
    _report(f"dirs=[{run}]", "eval=lfw", "eval_overrides=['num_workers=0']")  # the default's: elsewhere, no tree
    assert not any(k.startswith("lfw/") for k in json.loads((run / "metrics.json").read_text()))
