"""`-m` sweeps finish: a failed or diverged job is recorded in its status.json and the next job runs;
the sweep ends with one line per such job and exit status 1; an interruption stops the sweep at once."""

import json
import subprocess
import sys
import textwrap

from helpers import run_cli

SHRINK = ["device=cpu", "iterations=2", "batch_size=8", "log_every=1", "data.num_workers=0", "progress=false",
          "embedding_dim=16", "backbone.channels=[4,8,8,16]", "hydra.sweep.dir=sweep"]

# A Hydra app decorated as facetrain's commands are; job x=1 has a bug, x=3 is preempted.
APP = textwrap.dedent("""
    import hydra
    from facetrain.errors import TrainingInterrupted, report_user_errors
    from facetrain.run.job_outcome import record_outcome

    @hydra.main(version_base="1.3", config_path=None, config_name=None)
    @report_user_errors
    @record_outcome
    def main(cfg):
        if cfg.x == 1:
            raise RuntimeError("boom\\nsecond line")
        if cfg.x == 3:
            raise TrainingInterrupted("stopped by SIGTERM at iteration 5; resume=true continues", 15)

    main()
""")
APP_ARGS = ["hydra.sweep.dir=sweep", "+hydra.callbacks.status._target_=facetrain.run.sweep_status.SweepStatusCallback"]


def _jobs(sweep):
    """Job directories by job number."""
    return {int(p.name.split("_")[0]): p for p in sweep.iterdir() if p.is_dir()}


def _status(job_dir):
    return json.loads((job_dir / "status.json").read_text())


def _job_lines(stderr):
    return [ln for ln in stderr.splitlines() if ln.startswith("facetrain: job ")]


def _run_app(tmp_path, *args):
    (tmp_path / "app.py").write_text(APP)
    return subprocess.run([sys.executable, "app.py", "-m", *args, *APP_ARGS], cwd=tmp_path, capture_output=True,
                          text=True, timeout=300)


def test_a_failed_job_does_not_stop_the_sweep(tmp_path, tiny_data):
    env = {"FACETRAIN_DATA": str(tiny_data)}
    proc = run_cli("train", "-m", "loss=l2softmax", "alpha=-1,16", *SHRINK, cwd=tmp_path, env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    jobs = _jobs(tmp_path / "sweep")
    failed = _status(jobs[0])
    assert failed["status"] == "failed" and "alpha=-1 must be > 0" in failed["reason"]
    second = json.loads((jobs[1] / "metrics.json").read_text())
    assert second["status"] == "completed" and second["train/iterations"] == 2 and second["train/alpha"] == 16
    assert json.loads((jobs[0] / "metrics.json").read_text())["status_reason"] == failed["reason"]
    assert _job_lines(proc.stderr) == [f"facetrain: job 0 (alpha=-1) failed: {failed['reason']}"]
    assert "1 of 2 jobs did not complete (1 failed)" in proc.stderr
    report = (tmp_path / "sweep" / "report.md").read_text()  # the report callback ran first, without changing the above
    assert "| 0 | -1 | failed |" in report and failed["reason"] in report and "| 1 | 16 | completed |" in report


def test_a_diverged_job_is_recorded_as_diverged(tmp_path, tiny_data):
    env = {"FACETRAIN_DATA": str(tiny_data)}
    proc = run_cli("train", "-m", "optim.lr=1e30,0.01", *SHRINK, "iterations=10", "diverged_windows=2", cwd=tmp_path,
                   env=env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    jobs = _jobs(tmp_path / "sweep")
    diverged = _status(jobs[0])
    assert diverged["status"] == "diverged" and "lower the learning rate" in diverged["reason"]
    assert _status(jobs[1]) == {"status": "completed", "reason": ""}
    assert _job_lines(proc.stderr) == [f"facetrain: job 0 (optim.lr=1e+30) diverged: {diverged['reason']}"]


def test_all_jobs_completed_exit_zero(tmp_path, tiny_data):
    env = {"FACETRAIN_DATA": str(tiny_data)}
    proc = run_cli("train", "-m", "seed=1,2", *SHRINK, cwd=tmp_path, env=env)
    assert not _job_lines(proc.stderr) and "all 2 jobs completed" in proc.stdout
    assert all(_status(d)["status"] == "completed" for d in _jobs(tmp_path / "sweep").values())


def test_a_bug_gives_one_line_and_its_traceback_goes_to_the_job_log(tmp_path):
    proc = _run_app(tmp_path, "+x=0,1,2")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr
    jobs = _jobs(tmp_path / "sweep")
    assert [_status(jobs[k])["status"] for k in range(3)] == ["completed", "failed", "completed"]
    assert _job_lines(proc.stderr) == ["facetrain: job 1 (+x=1) failed: RuntimeError: boom"]
    log = (jobs[1] / "app.log").read_text()
    assert "Traceback" in log and "second line" in log


def test_an_interrupted_job_stops_the_sweep_with_its_signal_status(tmp_path):
    proc = _run_app(tmp_path, "+x=0,3,2")
    assert proc.returncode == 128 + 15, proc.stderr
    jobs = _jobs(tmp_path / "sweep")
    assert sorted(jobs) == [0, 1]  # job 2 never started: a preempted sweep is rerun as a whole
    assert _status(jobs[1]) == {"status": "interrupted",
                                "reason": "stopped by SIGTERM at iteration 5; resume=true continues"}
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == ["facetrain: error: stopped by SIGTERM at iteration 5; resume=true continues"]


def test_a_single_run_still_exits_2_and_records_its_status_without_new_folders(tmp_path, tiny_data):
    env = {"FACETRAIN_DATA": str(tiny_data)}
    proc = run_cli("train", "loss=l2softmax", "alpha=-1", "hydra.run.dir=run", "run_dir=elsewhere", *SHRINK,
                   cwd=tmp_path, env=env, check=False)
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and lines == ["facetrain: error: alpha=-1 must be > 0 (it is the radius of the "
                                              "feature hypersphere)"], proc.stderr
    assert _status(tmp_path / "run")["status"] == "failed"
    assert not (tmp_path / "elsewhere").exists() and not (tmp_path / "sweep").exists()


def test_jobs_left_by_an_earlier_sweep_in_the_same_folder_do_not_count(tmp_path):
    import os

    from facetrain.run.status_file import write_status
    from facetrain.run.sweep_status import sweep_jobs

    old, new, silent = tmp_path / "5_x=old", tmp_path / "0_x=new", tmp_path / "1_x=killed"
    write_status(old, "failed", "an earlier sweep")
    os.utime(old / "status.json", (1_000_000, 1_000_000))
    (tmp_path / "multirun.yaml").write_text("{}\n")
    write_status(new, "completed")
    (silent / ".hydra").mkdir(parents=True)
    (silent / ".hydra" / "hydra.yaml").write_text("hydra:\n  job:\n    num: 1\n  overrides:\n    task: [x=killed]\n")
    jobs = sweep_jobs(tmp_path)
    assert [(j.dir.name, j.status) for j in jobs] == [("0_x=new", "completed"), ("1_x=killed", "unknown")]
    assert jobs[1].overrides == ["x=killed"] and "recorded no status.json" in jobs[1].reason


def test_a_jobs_folder_name_stays_short_and_flat_whatever_its_overrides():
    """A folder name holds 255 bytes: a study's full-precision floats or a dozen overrides passed that, and a `/`
    in a value nested folders. Long names are cut and end in a hash of the whole, so two jobs never share one."""
    from hydra import initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from hydra.types import RunMode

    from facetrain.config import job_folder

    assert job_folder(3, "alpha=16,loss=l2softmax") == "3_alpha=16,loss=l2softmax"  # short names as Hydra's
    assert job_folder(0, "data.root=/a/b") == "0_data.root=_a_b"
    many = ",".join(f"loss.m{i}=0.{i}123456789012345" for i in range(20))
    names = {job_folder(7, many), job_folder(7, many.replace("0.1", "0.2")), job_folder(8, many)}
    assert len(names) == 3 and all(len(n.encode()) <= 120 and n.startswith(("7_loss.m0=", "8_")) for n in names)
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("train", [], RunMode.MULTIRUN)
        overrides = [f"alpha={120 / 7}", f"seed={10**30}", f"data.root=/{'x' * 100}/{'y' * 100}",
                     "optim.lr=0.012345678901234567"]
        job = loader.load_sweep_config(master, overrides)
        job.hydra.job.num = 12
        subdir = str(job.hydra.sweep.subdir)
    assert subdir == job_folder(12, str(job.hydra.job.override_dirname)) and "/" not in subdir
    assert len(subdir.encode()) <= 120 and subdir.startswith("12_alpha=17.142857142857142,")
