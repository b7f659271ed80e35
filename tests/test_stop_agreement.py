"""Stopping together, cheaply: ranks agree on a stop at log windows only (no collective per step), and under
submitit a SIGUSR2 ends in submitit's own requeue after last.pt is written."""

import json
import signal

import pytest
import torch

from facetrain.errors import TrainingInterrupted
from facetrain.train import trainer
from facetrain.train.hooks import signals as signals_hook


def _signal_at(monkeypatch, iteration: int, signum: int = signal.SIGUSR2) -> None:
    """This process receives `signum` right after finishing `iteration` (mid-window when log_every=2)."""
    step = trainer.train_step

    def step_then_signal(state, *args):
        out = step(state, *args)
        if state.iteration == iteration:
            signal.raise_signal(signum)
        return out

    monkeypatch.setattr(trainer, "train_step", step_then_signal)


def _pretend_two_ranks(monkeypatch, other_rank=lambda call: 0) -> list[int]:
    """The hook sees world size 2; `max_across_ranks` is counted, the other rank's flag is `other_rank(call)`."""
    calls: list[int] = []

    def fake_max(value: int) -> int:
        calls.append(value)
        return max(value, other_rank(len(calls)))

    monkeypatch.setattr(signals_hook, "world_size", lambda: 2)
    monkeypatch.setattr(signals_hook, "max_across_ranks", fake_max)
    return calls


def _last_iteration(run) -> int:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)["iteration"]


def test_the_stop_flag_is_agreed_at_log_windows_not_every_step(train_cfg, monkeypatch):
    calls = _pretend_two_ranks(monkeypatch)
    trainer.train(train_cfg("iterations=6", "log_every=2"))
    assert len(calls) == 3  # iterations 2, 4, 6: one small collective per log window


def test_a_signal_mid_window_stops_every_rank_at_the_next_window(train_cfg, monkeypatch, tmp_path):
    _signal_at(monkeypatch, 3)
    calls = _pretend_two_ranks(monkeypatch)
    with pytest.raises(TrainingInterrupted, match="stopped by SIGUSR2 at iteration 4") as stop:
        trainer.train(train_cfg("iterations=20", "log_every=2", "checkpoint_every=100"))
    assert stop.value.exit_status == 128 + signal.SIGUSR2
    assert calls == [0, signal.SIGUSR2] and _last_iteration(tmp_path / "run") == 4


def test_the_other_ranks_signal_stops_this_one_at_the_same_window(train_cfg, monkeypatch, tmp_path):
    _pretend_two_ranks(monkeypatch, other_rank=lambda call: signal.SIGTERM if call >= 2 else 0)
    with pytest.raises(TrainingInterrupted, match="stopped by SIGTERM at iteration 4"):
        trainer.train(train_cfg("iterations=20", "log_every=2", "checkpoint_every=100"))
    assert _last_iteration(tmp_path / "run") == 4


def test_one_process_stops_at_once_without_a_collective(train_cfg, monkeypatch, tmp_path):
    _signal_at(monkeypatch, 3)
    calls: list[int] = []
    monkeypatch.setattr(signals_hook, "max_across_ranks", lambda v: calls.append(v) or v)
    with pytest.raises(TrainingInterrupted, match="at iteration 3"):
        trainer.train(train_cfg("iterations=20", "log_every=2", "checkpoint_every=100"))
    assert calls == [] and _last_iteration(tmp_path / "run") == 3


def _submitit_handler(tmp_path, monkeypatch, timeout_min: int, max_num_timeout: int, rank: int = 0):
    """submitit's own SIGUSR2 handler, as its job runner installs it, with `scontrol requeue` recorded."""
    job_environment = pytest.importorskip("submitit.core.job_environment")
    from submitit.core.utils import DelayedSubmission, JobPaths
    from submitit.slurm.slurm import SlurmJobEnvironment

    requeued: list[int] = []
    monkeypatch.setattr(SlurmJobEnvironment, "_requeue", lambda self, countdown: requeued.append(countdown))
    for key, value in {"SUBMITIT_EXECUTOR": "slurm", "SLURM_JOB_ID": "4242", "SLURM_PROCID": str(rank)}.items():
        monkeypatch.setenv(key, value)
    env = SlurmJobEnvironment()
    paths = JobPaths(tmp_path / "submitit", job_id="4242", task_id=rank)
    paths.folder.mkdir()

    class Job:  # like Hydra's submitit launcher: checkpoint() resubmits the same call
        def __call__(self):
            return None

        def checkpoint(self):
            return DelayedSubmission(self)

    delayed = DelayedSubmission(Job())
    delayed.set_timeout(timeout_min, max_num_timeout)
    handler = job_environment.SignalHandler(env, paths, delayed)
    signal.signal(signal.SIGUSR2, handler.checkpoint_and_try_requeue)  # `restore_sigusr2` puts the old one back
    return requeued, paths


@pytest.fixture
def restore_sigusr2():
    previous = signal.getsignal(signal.SIGUSR2)
    yield
    signal.signal(signal.SIGUSR2, previous)


def test_under_submitit_sigusr2_saves_then_submitit_requeues(train_cfg, monkeypatch, tmp_path, restore_sigusr2):
    from facetrain.run.job_outcome import record_outcome

    requeued, paths = _submitit_handler(tmp_path, monkeypatch, timeout_min=60, max_num_timeout=2)
    _signal_at(monkeypatch, 3)
    with pytest.raises(SystemExit) as leaving:  # submitit's handler exits; no result file, SLURM runs it again
        record_outcome(trainer.train)(train_cfg("iterations=20", "checkpoint_every=100"))
    assert leaving.value.code == -1 and requeued == [2]  # preempted (not timed out): the countdown is kept
    assert paths.submitted_pickle.exists()  # the job to run again, as submitit's checkpoint() wrote it
    assert not paths.result_pickle.exists()
    assert _last_iteration(tmp_path / "run") == 3
    assert json.loads((tmp_path / "run" / "status.json").read_text())["status"] == "interrupted"
    assert signal.getsignal(signal.SIGUSR2).__func__.__name__ == "checkpoint_and_try_requeue"  # handed back


@pytest.mark.parametrize("rank, timeout_min, why", [(1, 60, "other ranks leave the requeue to rank 0"),
                                                    (0, 0, "timed out with no resubmission left")])
def test_without_a_requeue_the_interruption_ends_the_job(rank, timeout_min, why, train_cfg, monkeypatch, tmp_path,
                                                         restore_sigusr2):
    from facetrain.run.job_outcome import record_outcome

    requeued, _ = _submitit_handler(tmp_path, monkeypatch, timeout_min=timeout_min, max_num_timeout=0, rank=rank)
    _signal_at(monkeypatch, 3)
    with pytest.raises(TrainingInterrupted, match="at iteration 3"):
        record_outcome(trainer.train)(train_cfg("iterations=20", "checkpoint_every=100"))
    assert requeued == [], why
    assert _last_iteration(tmp_path / "run") == 3


@pytest.mark.parametrize(("torchrun", "raised"), [(False, [signal.SIGTERM]), (True, [])])
def test_a_repeated_signal_stops_at_once_except_as_torchruns_worker(torchrun, raised, monkeypatch):
    """Alone, SIGTERM twice means 'now'. A torchrun worker gets it twice whenever SLURM signals the step (SLURM
    reaches every process, then torchrun passes its own on): that must still save last.pt at the window."""
    if torchrun:
        monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    else:
        monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    sent: list[int] = []
    monkeypatch.setattr(signals_hook.signal, "raise_signal", sent.append)
    monkeypatch.setattr(signals_hook.signal, "signal", lambda signum, handler: None)
    hook = signals_hook.StopOnSignalHook()
    hook._handle(signal.SIGTERM, None)
    hook._handle(signal.SIGTERM, None)
    assert sent == raised and hook.received == signal.SIGTERM
