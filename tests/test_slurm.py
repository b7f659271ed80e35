"""SLURM: its task variables read as torchrun's, the hydra/launcher=slurm preset, one run directory per job."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import time
from datetime import datetime

import pytest
from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from hydra.types import RunMode
from test_distributed import _free_port, _overrides

import facetrain.config
from facetrain.distributed import process_group as distributed
from facetrain.distributed.process_group import first_host, slurm_environment

TASK = {"SLURM_STEP_ID": "0", "SLURM_JOB_ID": "4242", "SLURM_NTASKS": "16", "SLURM_JOB_NUM_NODES": "2",
        "SLURM_PROCID": "11", "SLURM_LOCALID": "3", "SLURM_JOB_NODELIST": "gpu-[007-008]"}


def test_a_slurm_task_reads_as_a_torchrun_rank():
    assert slurm_environment(TASK) == {"RANK": "11", "WORLD_SIZE": "16", "LOCAL_RANK": "3",
                                       "LOCAL_WORLD_SIZE": "8", "MASTER_ADDR": "gpu-007",
                                       "MASTER_PORT": str(20000 + 4242 % 40000)}
    assert slurm_environment(TASK | {"MASTER_PORT": "29400"})["MASTER_PORT"] == "29400"


def test_a_user_exported_master_addr_and_port_are_kept(monkeypatch):
    """A job script that exports its own meeting point (a fabric interface's address) keeps it."""
    found = slurm_environment(TASK | {"MASTER_ADDR": "10.1.2.3", "MASTER_PORT": "29400"})
    assert (found["MASTER_ADDR"], found["MASTER_PORT"]) == ("10.1.2.3", "29400")
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")} | TASK
    monkeypatch.setattr(os, "environ", env | {"MASTER_ADDR": "ib-node7"})
    assert distributed.adopt_slurm_environment() and os.environ["MASTER_ADDR"] == "ib-node7"


def test_torchrun_single_tasks_and_the_batch_script_are_left_alone():
    assert slurm_environment(TASK | {"WORLD_SIZE": "2"}) == {}  # torchrun inside a SLURM job wins
    assert slurm_environment(TASK | {"SLURM_NTASKS": "1"}) == {}
    assert slurm_environment({k: v for k, v in TASK.items() if k != "SLURM_STEP_ID"}) == {}  # sbatch's script


@pytest.mark.parametrize("nodelist", ["node1", "gpu-[007-008]", "a[1,3-5]", "rack[2-3]-n[09-10],cpu7",
                                      "x01,y[1-2]", "big[0099-0101,7]"])
def test_first_host_agrees_with_submitits_parser(nodelist):
    slurm = pytest.importorskip("submitit.slurm.slurm")
    assert first_host(nodelist) == slurm._parse_node_list(nodelist)[0]


def test_adopting_exports_torchruns_variables(monkeypatch):
    torchruns = ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "LOCAL_WORLD_SIZE")
    env = {k: v for k, v in os.environ.items() if k not in torchruns} | TASK
    monkeypatch.setattr(os, "environ", env)  # a copy: what the call exports must not reach the other tests
    assert distributed.adopt_slurm_environment()
    assert (distributed.launched_world_size(), distributed.local_rank(), os.environ["RANK"]) == (16, 3, "11")


def test_the_slurm_preset_composes():
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose("train", ["hydra/launcher=slurm", "hydra.launcher.gpus_per_node=4"], return_hydra_config=True)
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.gpus_per_node, launcher.tasks_per_node, launcher.nodes) == (4, 4, 1)


def test_every_task_of_a_job_resolves_the_submitting_machines_run_directory(monkeypatch):
    """submitit pickles the composed config; each task re-loads it with its own clock, yet the directory
    (`${ft.now:...}`) must be the one the submitting machine named."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    monkeypatch.setattr(facetrain.config, "_LAUNCH_TIME", [datetime(2030, 5, 6, 7, 8, 9)])
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        master = loader.load_configuration("train", ["hydra/launcher=slurm"], RunMode.MULTIRUN)
        swept = str(master.hydra.sweep.dir)
        shipped = pickle.loads(pickle.dumps(master))
        facetrain.config.set_launch_time(datetime(2030, 5, 6, 9, 0, 0))  # the task starts later, elsewhere
        job = loader.load_sweep_config(shipped, ["seed=1"])
        assert swept.endswith("2030-05-06_07-08-09") and str(job.hydra.sweep.dir) == swept


@pytest.mark.slow
def test_srun_with_two_tasks_trains_as_torchrun_would(tiny_data, tmp_path):
    """`srun -n 2 facetrain train`, simulated: two processes with SLURM's task variables and no torchrun."""
    job = {"SLURM_STEP_ID": "0", "SLURM_JOB_ID": "7", "SLURM_NTASKS": "2", "SLURM_JOB_NUM_NODES": "1",
           "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": str(_free_port()), "PYTHONUNBUFFERED": "1"}
    base = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    run = tmp_path / "srun"
    args = _overrides(tiny_data, run)
    procs = [subprocess.Popen([sys.executable, "-m", "facetrain.cli", "train", *args], cwd=tmp_path,
                              env=base | job | {"SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]
    outputs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["train/world_size"] == 2 and metrics["train/iterations"] == 4


_TASK = """
import json, sys, cloudpickle
launcher, singletons = cloudpickle.load(open(sys.argv[1], "rb"))
# what each SLURM task runs: job 0 of the sweep, with the job's overrides as the sweeper hands them over
result = launcher(json.loads(sys.argv[2]), "hydra.sweep.dir", 0, "job_id_for_0", singletons)
print("job status:", result.status.name)
"""


def _shipped_launcher(tmp_path, overrides: list[str]):
    """Hydra's submitit launcher for `overrides`, as the submitting machine pickles it (cloudpickle, as submitit
    does), with Hydra's singletons."""
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    from hydra._internal.callbacks import Callbacks
    from hydra.core.plugins import Plugins
    from hydra.core.singleton import Singleton
    from hydra.types import HydraContext

    from facetrain.commands import _train_app

    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        loader = GlobalHydra.instance().config_loader()
        config = loader.load_configuration("train", [*overrides, "hydra/launcher=slurm",
                                                     f"hydra.sweep.dir={tmp_path / 'sweep'}"], RunMode.MULTIRUN)
        context = HydraContext(config_loader=loader, callbacks=Callbacks(config))
        launcher = Plugins.instance().instantiate_launcher(hydra_context=context, task_function=_train_app.__wrapped__,
                                                           config=config)
        return launcher, Singleton.get_state()


def _slurm_tasks(argv: list[str], tmp_path, extra_env: dict | None = None) -> list[subprocess.Popen]:
    """Two SLURM tasks of job 77 on this machine, each running `argv`."""
    job = {"SUBMITIT_EXECUTOR": "slurm", "SLURM_STEP_ID": "0", "SLURM_JOB_ID": "77", "SLURM_NTASKS": "2",
           "SLURM_JOB_NUM_NODES": "1", "SLURM_JOB_NODELIST": "localhost", "MASTER_PORT": str(_free_port()),
           "PYTHONUNBUFFERED": "1"} | (extra_env or {})
    base = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    return [subprocess.Popen(argv, cwd=tmp_path, env=base | job | {"SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for r in (0, 1)]


@pytest.mark.slow
def test_submitit_tasks_join_one_group_and_one_run_directory(tiny_data, tmp_path):
    """The submitit launcher's job, as two SLURM tasks run it: the launcher pickled on the submitting machine
    (cloudpickle, as submitit does), then called in two processes that have SLURM's task variables."""
    cloudpickle = pytest.importorskip("cloudpickle")
    overrides = [o for o in _overrides(tiny_data, None) if not o.startswith("run_dir")]
    shipped = tmp_path / "launcher.pkl"
    shipped.write_bytes(cloudpickle.dumps(_shipped_launcher(tmp_path, overrides)))
    procs = _slurm_tasks([sys.executable, "-c", _TASK, str(shipped), json.dumps(overrides)], tmp_path)
    try:
        outputs = [p.communicate(timeout=300)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0] and all("job status: COMPLETED" in o for o in outputs), outputs
    runs = list((tmp_path / "sweep").rglob("metrics.json"))  # the job subdir names its overrides
    assert len(runs) == 1, runs  # both tasks wrote into one job directory
    metrics = json.loads(runs[0].read_text())
    assert metrics["train/world_size"] == 2 and metrics["train/iterations"] == 4


@pytest.mark.slow
def test_sigusr2_in_a_submitit_job_saves_then_submitit_requeues(tiny_data, tmp_path):
    """submitit's own job runner (process_job: its signal handlers, its result files) in two tasks, and
    `scontrol` a script that records its arguments: SLURM's SIGUSR2 before the time limit ends in last.pt at
    one iteration, `scontrol requeue 77` from rank 0 alone, the job's resubmission dumped, no result file."""
    pytest.importorskip("submitit")
    import torch
    from submitit.core.utils import DelayedSubmission, JobPaths

    overrides = [o for o in _overrides(tiny_data, None) if not o.startswith(("run_dir", "iterations", "log_every"))]
    overrides += ["iterations=100000", "log_every=2", "checkpoint_every=2"]
    launcher, singletons = _shipped_launcher(tmp_path, overrides)
    delayed = DelayedSubmission(launcher, overrides, "hydra.sweep.dir", 0, "job_id_for_0", singletons)
    delayed.set_timeout(60, 2)  # 60 minutes, 2 requeues after timeouts
    folder = tmp_path / "submitit"
    paths = [JobPaths(folder, job_id="77", task_id=r) for r in (0, 1)]
    folder.mkdir()
    delayed.dump(paths[0].submitted_pickle)
    first_pickle = paths[0].submitted_pickle.stat().st_mtime_ns
    bin_dir, calls = tmp_path / "bin", tmp_path / "scontrol_calls"
    bin_dir.mkdir()
    (bin_dir / "scontrol").write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    (bin_dir / "scontrol").chmod(0o755)
    runner = "import sys; from submitit.core.submission import process_job; process_job(sys.argv[1])"
    procs = _slurm_tasks([sys.executable, "-c", runner, str(folder)], tmp_path,
                         {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"})
    try:
        deadline = time.monotonic() + 240
        last = None
        while last is None or torch.load(last, weights_only=True)["iteration"] < 4:
            assert time.monotonic() < deadline and all(p.poll() is None for p in procs)
            found = list((tmp_path / "sweep").rglob("checkpoints/last.pt"))
            last = found[0] if found else None
            time.sleep(0.3)
        for p in procs:  # SLURM signals every task of the step
            p.send_signal(signal.SIGUSR2)
        outputs = [p.communicate(timeout=120)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [255, 128 + signal.SIGUSR2], outputs  # sys.exit(-1) from submitit; rank 1: 140
    assert calls.read_text().split() == ["requeue", "77"]
    assert paths[0].submitted_pickle.stat().st_mtime_ns != first_pickle  # checkpoint() dumped the resubmission
    assert not any(p.result_pickle.exists() for p in paths)  # the job is not over for the submitting process
    stopped_at = torch.load(last, weights_only=True)["iteration"]
    assert stopped_at >= 4 and stopped_at % 2 == 0
    assert json.loads((last.parent.parent / "status.json").read_text())["status"] == "interrupted"
