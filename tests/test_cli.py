"""The CLI as users type it: the README's command lines verbatim (shrunk only by appended overrides).

They run in this process (`helpers.run_cli`); the installed `facetrain` script gets one fresh process of its own."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from helpers import run_cli

from facetrain.cli import main

SHRINK = ["device=cpu", "iterations=3", "batch_size=8", "log_every=1", "data.num_workers=0", "progress=false",
          "embedding_dim=16", "backbone.channels=[4,8,8,16]"]


@pytest.fixture
def workdir(tmp_path, tiny_data):
    """A fresh working directory whose default data is the tiny synthetic tree."""
    return tmp_path, {"FACETRAIN_DATA": str(tiny_data)}


def _error_line(proc):
    assert proc.returncode == 2, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("facetrain: error:"), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def test_top_level_help(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(cmd in out for cmd in ("train", "eval PROTOCOL", "data synth"))


def test_train_help_shows_config_groups(workdir):
    cwd, env = workdir
    out = run_cli("train", "--help", cwd=cwd, env=env).stdout
    for group in ("backbone:", "head:", "loss:", "data:", "optim:", "schedule:"):
        assert group in out
    assert "l2softmax" in out


def test_cfg_job_prints_without_running(workdir):
    cwd, env = workdir
    cfg = yaml.safe_load(run_cli("train", "--cfg", "job", "loss=l2softmax", "alpha=50", cwd=cwd, env=env).stdout)
    assert cfg["alpha"] == 50 and cfg["head"]["_target_"] == "facetrain.heads.L2ScaleHead"
    assert not (cwd / "runs").exists()


def test_train_then_eval_verbatim(workdir):
    cwd, env = workdir
    run_cli("train", "loss=l2softmax", "alpha=50", *SHRINK, cwd=cwd, env=env)
    (run,) = (cwd / "runs" / "train").iterdir()
    assert (run / "checkpoints" / "last.pt").is_file() and (run / "tb").is_dir()
    assert yaml.safe_load((run / ".hydra" / "config.yaml").read_text())["alpha"] == 50
    out = run_cli("eval", "lfw", cwd=cwd, env=env).stdout  # verbatim: the newest run, the demo's LFW tree
    assert "LFW" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0 <= metrics["lfw/acc_mean"] <= 1 and "lfw/acc_std" in metrics and "train/loss" in metrics
    (evaldir,) = (cwd / "runs" / "eval" / "lfw").iterdir()
    features = np.load(evaldir / "features_lfw.npz")
    assert features["features"].shape[0] == len(features["paths"])
    # the features file alone scores the same
    run_cli("eval", "lfw", f"features={evaldir / 'features_lfw.npz'}", "hydra.run.dir=again", cwd=cwd, env=env)
    again = json.loads((cwd / "again" / "metrics.json").read_text())
    assert again["lfw/acc_mean"] == metrics["lfw/acc_mean"]


def test_multirun_sweep_of_alpha(workdir):
    cwd, env = workdir
    run_cli("train", "-m", "loss=l2softmax", "alpha=8,16,32", *SHRINK, "hydra.sweep.dir=sweep", cwd=cwd, env=env)
    jobs = sorted((p for p in (cwd / "sweep").glob("*_*") if p.is_dir()), key=lambda p: int(p.name.split("_")[0]))
    assert len(jobs) == 3 and (cwd / "sweep" / "val_lfw_acc_mean_vs_alpha.png").is_file()  # and the report's plot
    alphas = [json.loads((j / "metrics.json").read_text())["train/alpha"] for j in jobs]
    assert alphas == [8, 16, 32]


def test_missing_data_folder(workdir):
    cwd, env = workdir
    line = _error_line(run_cli("train", "data=folder", "data.root=/no/such/place", *SHRINK, cwd=cwd, env=env,
                               check=False))
    assert "/no/such/place does not exist" in line and "facetrain data synth" in line


def test_the_first_command_generates_the_missing_default_data(workdir, tmp_path):
    cwd, env = workdir
    tiny = ["data.synth.train_identities=3", "data.synth.train_min_images=2", "data.synth.train_max_images=3",
            "data.synth.lfw_pairs_per_fold=1", "data.synth.lfw_identities_per_fold=2", "data.synth.lfw_max_images=3",
            "data.synth.workers=1", "data.synth.ytf_splits=0", "data.synth.ijba_splits=0", "data.synth.blufr_trials=0",
            "data.synth.ijbc_subjects=0", "data.synth.insightface_pairs_per_fold=0", "data.synth.rfw_pairs_per_fold=0"]
    shrink = [a for a in SHRINK if not a.startswith("paths.data=")]
    proc = run_cli("train", "loss=l2softmax", "alpha=50", f"paths.data={tmp_path / 'empty'}", *shrink, *tiny,
                   cwd=cwd, env=env)
    assert "synthetic training data" in proc.stdout and "writing it now" in proc.stdout
    assert len(list((tmp_path / "empty" / "synth" / "casia").iterdir())) == 3


@pytest.mark.parametrize("alpha", ["-1", "0", "abc"])
def test_bad_alpha(workdir, alpha):
    cwd, env = workdir
    line = _error_line(run_cli("train", "loss=l2softmax", f"alpha={alpha}", *SHRINK, cwd=cwd, env=env, check=False))
    assert "alpha" in line


def test_pairs_line_naming_a_missing_image(workdir, tiny_data):
    cwd, env = workdir
    lfw = cwd / "lfw"
    shutil.copytree(tiny_data / "synth" / "lfw", lfw)
    name, number = (lfw / "pairs.txt").read_text().splitlines()[1].split("\t")[:2]
    (lfw / name / f"{name}_{int(number):04d}.jpg").unlink()
    line = _error_line(run_cli("eval", "lfw", f"data.root={lfw}", "model=nowhere", cwd=cwd, env=env, check=False))
    assert f"{name}_{int(number):04d}.jpg" in line and "missing" in line


def test_eval_without_any_model(workdir):
    cwd, env = workdir
    line = _error_line(run_cli("eval", "lfw", cwd=cwd, env=env, check=False))
    assert "facetrain train" in line


def test_unknown_command_through_the_installed_script(tmp_path):
    """The console script pip installed (`[project.scripts]`), in a fresh process as a user runs it."""
    script = Path(sys.executable).with_name("facetrain")
    proc = subprocess.run([str(script), "fly"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "unknown command 'fly'" in proc.stderr and "usage: facetrain" in proc.stderr


def test_multirun_and_cfg_together_are_one_line(tmp_path):
    proc = run_cli("train", "-m", "alpha=8,16", "--cfg", "job", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and proc.stdout == "" and "Traceback" not in proc.stderr
    assert _error_line(proc) == ("facetrain: error: --cfg and -m cannot go together; --cfg and --info show one run's "
                                 "config: drop -m and give one value per key (facetrain train --cfg job alpha=8)")
    assert run_cli("train", "--cfg", "job", "alpha=8", cwd=tmp_path).stdout.count("alpha: 8") == 1


def test_data_synth_command(workdir):
    cwd, env = workdir
    tiny = ["synth.train_identities=3", "synth.train_min_images=2", "synth.train_max_images=3",
            "synth.lfw_pairs_per_fold=1", "synth.lfw_identities_per_fold=2", "synth.lfw_max_images=3", "synth.workers=1",
            "synth.ytf_splits=0", "synth.ijba_splits=0", "synth.blufr_trials=0", "synth.ijbc_subjects=0",
            "synth.insightface_pairs_per_fold=1", "synth.rfw_pairs_per_fold=1", "synth.rfw_identities_per_fold=2",
            "synth.rfw_max_images=2"]
    out = run_cli("data", "synth", "synth.out=mine", *tiny, cwd=cwd, env=env).stdout
    assert "written" in out and (cwd / "mine" / "lfw" / "pairs.txt").is_file()
    assert "already there" in run_cli("data", "synth", "synth.out=mine", *tiny, cwd=cwd, env=env).stdout
    line = _error_line(run_cli("data", "fly", cwd=cwd, env=env, check=False))
    assert "unknown data action 'fly'" in line and "synth" in line


def test_the_protocol_word_goes_after_the_flags():
    from facetrain.cli import _to_hydra_args

    assert _to_hydra_args("eval", ["lfw", "-m", "model=a,b"]) == ["-m", "model=a,b", "protocol=lfw"]
    assert _to_hydra_args("eval", ["-m", "protocol=lfw"]) == ["-m", "protocol=lfw"]


@pytest.mark.parametrize("args, expected", [
    (("train", "alpah=8"), "alpah: no such key at the top level (did you mean alpha?)"),
    (("train", "optim.lrr=0.1"), "optim.lrr: no such key under optim (did you mean lr?)"),
    (("train", "loss=l2sofmax"), "loss=l2sofmax: no such loss option (did you mean l2softmax or softmax?)"),
    (("eval", "lfww"), "protocol=lfww: no such protocol option (did you mean lfw?); the options: bin, blufr"),
    (("train", "alpha=[8"), "alpha=[8: Hydra cannot parse this override"),
    (("data", "align", "align.src=nowhere", "align.out=crops"), "align.src="),
    (("data", "pack", "pack.src=nowhere", "pack.out=faces.pack"), "pack.src="),
])
def test_common_slips_are_one_line_naming_what_was_typed(workdir, args, expected):
    """Hydra's own refusals were 5-7 lines with exit status 1 and advised `+alpah=8`; a missing source folder named
    data.root, a key these commands do not read."""
    cwd, env = workdir
    line = _error_line(run_cli(*args, cwd=cwd, env=env, check=False))
    assert expected in line and "+alpah=8" not in line, line
    assert not (cwd / "crops").exists() and not (cwd / "faces.pack").exists()


def test_a_sweep_job_folder_passes_whole_as_a_value(tmp_path):
    """`facetrain eval lfw model=runs/multirun/DATE/0_alpha=8,loss=l2softmax` was refused by Hydra's grammar
    (`mismatched input '='`): an existing path's value is quoted; sweeps (`model=a,b`) stay as typed."""
    from helpers import compose_config

    from facetrain.cli import _to_hydra_args

    job = tmp_path / "0_alpha=8,loss=l2softmax"
    job.mkdir()
    args = _to_hydra_args("eval", ["lfw", f"model={job}", "-m", "mirror=sum,none", f"features='{job}'"])
    assert args == [f"model='{job}'", "-m", "mirror=sum,none", f"features='{job}'", "protocol=lfw"]
    assert compose_config("eval", [args[0]]).model == str(job)
    assert _to_hydra_args("train", [f"init_from={tmp_path}/missing=1,2"]) == [f"init_from={tmp_path}/missing=1,2"]
