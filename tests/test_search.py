"""search=... (Hydra's Optuna sweeper): a study of three tiny trials completes with one trial made to fail, the failure
told to Optuna as failed, the objective the validation score of best.pt, and the study's report draws the alpha
curve; a search space that cannot work is one line before anything runs."""

import json

import pytest
import yaml
from helpers import run_cli

SHRINK = ["device=cpu", "iterations=2", "batch_size=8", "log_every=1", "data.num_workers=0", "progress=false",
          "embedding_dim=16", "backbone.channels=[4,8,8,16]", "hydra.sweep.dir=study", "val.every=2"]


@pytest.mark.parametrize(("space", "expected"), [
    (["search=cosface_margin", "loss=softmax"], "the search space names loss.margin, which the config lacks (loss "
                                                "has: bias, sample_rate)"),
    (["search=l2softmax_alpha", "val.every=0"], "validation is off (val.every=0)"),
    (["search=l2softmax_alpha", "hydra.sweeper.n_trials=0"], "hydra.sweeper.n_trials=0 must be an integer >= 1"),
])
def test_a_search_that_cannot_work_is_one_line_before_any_trial(tmp_path, tiny_data, space, expected):
    proc = run_cli("train", "-m", *SHRINK[:-1], *space, cwd=tmp_path, env={"FACETRAIN_DATA": str(tiny_data)},
                   check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and expected in lines[0], proc.stderr
    assert not (tmp_path / "study").exists()  # nothing written


def test_a_study_whose_every_trial_fails_ends_with_each_trials_line(tmp_path, tiny_data):
    """Optuna's sweeper then asks for a best trial there is not (a traceback); the study ends as a sweep does."""
    proc = run_cli("train", "-m", "search=optuna", "loss=l2softmax", "alpha=choice(-1,-2)", "hydra.sweeper.n_trials=2",
                   *SHRINK, cwd=tmp_path, env={"FACETRAIN_DATA": str(tiny_data)}, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("facetrain: ")]
    assert [ln.split(" (")[0] for ln in lines] == ["facetrain: job 0", "facetrain: job 1", "facetrain: 2 of 2 jobs did not complete"]
    alphas = sorted(ln.split("(alpha=")[1].split(")")[0] for ln in lines[:2])
    assert alphas == ["-1", "-2"] and all("failed: alpha=-" in ln and "must be" in ln for ln in lines[:2])
    report = (tmp_path / "study" / "report.md").read_text()  # the report ran, as after a sweep
    assert "| 0 | -" in report and "| 1 | -" in report and report.count("| failed |") == 2


@pytest.mark.slow
def test_a_study_whose_every_trial_fails_in_other_processes_ends_the_same_way(tmp_path, tiny_data):
    """With a process-based launcher (submitit's local one, as SLURM's) the trials end in other processes: the
    sweeper, not a callback, sees that none scored."""
    proc = run_cli("train", "-m", "search=optuna", "hydra/launcher=submitit_local", "hydra.launcher.timeout_min=5",
                   "loss=l2softmax", "alpha=choice(-1,-2)", "hydra.sweeper.n_trials=2", *SHRINK, cwd=tmp_path,
                   env={"FACETRAIN_DATA": str(tiny_data)}, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("facetrain: ")]
    assert [ln.split(" (")[0] for ln in lines] == ["facetrain: job 0", "facetrain: job 1", "facetrain: 2 of 2 jobs did not complete"]
    assert (tmp_path / "study" / "report.md").read_text().count("| failed |") == 2


@pytest.mark.slow
def test_a_study_of_three_trials_goes_on_past_a_failed_one(tmp_path, tiny_data, monkeypatch):
    import optuna

    studies = []
    create_study = optuna.create_study
    monkeypatch.setattr(optuna, "create_study", lambda **kw: studies.append(create_study(**kw)) or studies[-1])
    # the seeded sampler draws alpha 16, -1, 8: the second trial fails (alpha must be > 0)
    proc = run_cli("train", "-m", "search=optuna", "loss=l2softmax", "alpha=choice(-1,8,16)", "hydra.sweeper.n_trials=3",
                   "hydra.sweeper.sampler.seed=2", *SHRINK, cwd=tmp_path, env={"FACETRAIN_DATA": str(tiny_data)},
                   check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr  # sweep_status: one job failed
    (study,) = studies
    trials = study.get_trials()
    assert [t.params["alpha"] for t in trials] == [16, -1, 8]
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    jobs = {int(d.name.split("_")[0]): d for d in (tmp_path / "study").iterdir() if d.is_dir()}
    statuses = [json.loads((jobs[i] / "status.json").read_text())["status"] for i in range(3)]
    assert statuses == ["completed", "failed", "completed"]
    for i in (0, 2):  # each completed trial's value is the score its best.pt was kept for
        assert trials[i].value == json.loads((jobs[i] / "metrics.json").read_text())["val/best/lfw/acc_mean"]
    results = yaml.safe_load((tmp_path / "study" / "optimization_results.yaml").read_text())
    assert results["best_value"] == max(trials[0].value, trials[2].value)
    report = (tmp_path / "study" / "report.md").read_text()  # the same table and alpha curve as a grid's
    assert "| 1 | -1 | failed |" in report and (tmp_path / "study" / "val_lfw_acc_mean_vs_alpha.png").is_file()
