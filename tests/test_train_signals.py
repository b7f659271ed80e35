"""Runs that survive: SIGTERM / SIGINT / SIGUSR2 (SLURM's early signal under submitit) save a checkpoint and exit 128+N; kill -9 loses nothing past last.pt;
either way `resume=true` (or `resume=auto`) continues to the weights of an uninterrupted run."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from helpers import run_cli, tiny_train_overrides

# absolute milestones and a run "too long to finish" for the interrupted process; the resumed and the
# reference runs then stop at the same iteration, chosen from where the interruption left the run
# (the warm-up is fixed too: by default its length is a fraction of `iterations`, which differ here)
ARGS = ["schedule.milestones=[3,6]", "warmup.iterations=2", "checkpoint_every=2", "log_every=1", "loss=l2softmax"]


def _start(run_dir, tiny_data, iterations: int) -> subprocess.Popen:
    args = tiny_train_overrides(tiny_data, run_dir) + ARGS + [f"iterations={iterations}"]
    return subprocess.Popen([sys.executable, "-m", "facetrain.cli", "train", *args], cwd=run_dir.parent,
                            env=os.environ | {"PYTHONUNBUFFERED": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_checkpoint(proc: subprocess.Popen, last, at_least: int = 4) -> None:
    """Until last.pt exists at iteration >= at_least (the run is then surely mid-way)."""
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if last.exists():
            try:
                if torch.load(last, weights_only=True)["iteration"] >= at_least:
                    return
            except Exception:  # noqa: BLE001 - replaced under us between exists() and load(): look again
                pass
        time.sleep(0.2)
    proc.kill()
    raise AssertionError("the run wrote no checkpoint in time")


def _weights(last):
    state = torch.load(last, weights_only=True)
    return state["iteration"], {f"{p}.{k}": v for p, sd in state["model"].items() for k, v in sd.items()}


def _finish_and_compare(tmp_path, tiny_data, run, stopped_at: int, resume: str = "true") -> None:
    end = stopped_at + 3  # crosses milestone 6 when stopped at 4 or 5, and the lr drop must match too
    run_cli("train", *tiny_train_overrides(tiny_data, run), *ARGS, f"iterations={end}", f"resume={resume}",
            cwd=tmp_path)
    run_cli("train", *tiny_train_overrides(tiny_data, tmp_path / "ref"), *ARGS, f"iterations={end}", cwd=tmp_path)
    it_resumed, resumed = _weights(run / "checkpoints" / "last.pt")
    it_ref, ref = _weights(tmp_path / "ref" / "checkpoints" / "last.pt")
    assert it_resumed == it_ref == end
    for key in ref:
        assert torch.equal(ref[key], resumed[key]), key


@pytest.mark.parametrize("signum", [signal.SIGTERM, *(pytest.param(s, marks=pytest.mark.slow)
                                                      for s in (signal.SIGUSR2, signal.SIGINT))],
                         ids=lambda signum: signal.Signals(signum).name)
def test_a_stop_signal_saves_the_current_iteration_then_resume_is_exact(signum, tmp_path, tiny_data):
    run = tmp_path / "run"
    proc = _start(run, tiny_data, 100_000)
    _wait_for_checkpoint(proc, run / "checkpoints" / "last.pt")
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signum, err
    stopped_at, _ = _weights(run / "checkpoints" / "last.pt")
    lines = [line for line in err.splitlines() if line.startswith("facetrain: error:")]
    assert len(lines) == 1 and f"at iteration {stopped_at}" in lines[0] and "resume=true" in lines[0]
    # the command it suggests repeats the run's own overrides: without them the resume would train 800 iterations
    # of 64 (the defaults) instead of this run's
    assert "iterations=100000 resume=true hydra.run.dir=" in lines[0] and " loss=l2softmax " in lines[0], lines[0]
    assert "Traceback" not in err
    _finish_and_compare(tmp_path, tiny_data, run, stopped_at, resume="auto")


@pytest.mark.slow  # ~6 s; SIGTERM's exact resume stays in the default suite
def test_kill_9_then_resume_is_exact(tmp_path, tiny_data):
    run = tmp_path / "run"
    proc = _start(run, tiny_data, 100_000)
    _wait_for_checkpoint(proc, run / "checkpoints" / "last.pt")
    proc.kill()
    proc.communicate(timeout=60)
    stopped_at, _ = _weights(run / "checkpoints" / "last.pt")  # whatever checkpoint_every left: complete, never half
    _finish_and_compare(tmp_path, tiny_data, run, stopped_at)


def test_resume_auto_starts_a_fresh_run_then_continues_it(train_cfg, tmp_path):
    from facetrain.errors import FacetrainError
    from facetrain.train import train

    run = tmp_path / "run"
    train(train_cfg("iterations=2", "resume=auto", run_dir=run))
    assert _weights(run / "checkpoints" / "last.pt")[0] == 2
    assert train(train_cfg("iterations=3", "resume=auto", run_dir=run))["train/iterations"] == 3
    with pytest.raises(FacetrainError, match="resume='maybe'"):
        train(train_cfg("resume=maybe", run_dir=run))


def _start_rank(run_dir, tiny_data, rank: int, port: int, *extra: str) -> subprocess.Popen:
    """One of two ranks over gloo, started as torchrun starts each (its variables), so each can be signalled."""
    args = [a for a in tiny_train_overrides(tiny_data, run_dir) + ARGS if not a.startswith("log_every")]
    ranks = {"WORLD_SIZE": "2", "RANK": str(rank), "LOCAL_RANK": str(rank), "LOCAL_WORLD_SIZE": "2",
             "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen([sys.executable, "-m", "facetrain.cli", "train", *args, "log_every=2", *extra],
                            cwd=run_dir.parent, env=os.environ | ranks, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _two_ranks(run_dir, tiny_data, *extra: str) -> list[subprocess.Popen]:
    from test_distributed import _free_port

    port = _free_port()
    return [_start_rank(run_dir, tiny_data, rank, port, *extra) for rank in (0, 1)]


def _finish(procs: list[subprocess.Popen]) -> list[str]:
    try:
        errs = [proc.communicate(timeout=240)[1] for proc in procs]
    finally:
        for proc in procs:
            proc.kill()
    return errs


@pytest.mark.slow
def test_sigusr2_to_one_of_two_ranks_stops_both_at_one_window_then_resume_is_exact(tmp_path, tiny_data):
    """SLURM may signal the ranks steps apart (here only rank 1 at all): both stop at the same log window,
    last.pt is written there, and two ranks resumed reach the weights of two ranks never stopped."""
    run = tmp_path / "run"
    procs = _two_ranks(run, tiny_data, "iterations=100000")
    _wait_for_checkpoint(procs[0], run / "checkpoints" / "last.pt")
    seen = _weights(run / "checkpoints" / "last.pt")[0]
    procs[1].send_signal(signal.SIGUSR2)
    errs = _finish(procs)
    assert [proc.returncode for proc in procs] == [128 + signal.SIGUSR2] * 2, errs
    stopped_at, _ = _weights(run / "checkpoints" / "last.pt")
    assert stopped_at >= seen and stopped_at % 2 == 0  # a log window (log_every=2), at or after the signal
    for err in errs:  # each rank: one line, the same iteration
        lines = [line for line in err.splitlines() if line.startswith("facetrain: error:")]
        assert len(lines) == 1 and f"stopped by SIGUSR2 at iteration {stopped_at};" in lines[0], err
        assert "Traceback" not in err
    end = stopped_at + 3  # the lr drop at milestone 6 must match too
    for run_dir, extra in ((run, ["resume=auto"]), (tmp_path / "ref", [])):
        procs = _two_ranks(run_dir, tiny_data, f"iterations={end}", *extra)
        errs = _finish(procs)
        assert [proc.returncode for proc in procs] == [0, 0], errs
    it_resumed, resumed = _weights(run / "checkpoints" / "last.pt")
    it_ref, ref = _weights(tmp_path / "ref" / "checkpoints" / "last.pt")
    assert it_resumed == it_ref == end
    for key in ref:
        assert torch.equal(ref[key], resumed[key]), key
