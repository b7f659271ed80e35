"""StopOnSignalHook: SIGTERM / SIGINT / SIGUSR2 finish the step in flight, save last.pt, and stop.

SLURM and Kubernetes send SIGTERM before killing a job; Ctrl-C sends SIGINT; SLURM jobs submitted by
submitit (Hydra's submitit launcher) get SIGUSR2 `signal_delay_s` before their time limit (submitit's
`--signal=USR2@delay`; another signal where SUBMITIT_PREEMPT_SIGNAL names one). Either way the run ends
with a checkpoint at the iteration every rank stopped at and exit status 128 + the signal number (under
submitit, SIGUSR2 then goes on to submitit's requeue: `facetrain.run.submitit_requeue`), and
`facetrain train resume=true` (or `resume=auto` in a requeued job) continues exactly. A second signal of
the same kind while the first is handled interrupts at once, as Ctrl-C twice does elsewhere (not under torchrun,
whose workers get a signal twice: SLURM signals every process of a step, and torchrun passes its own on).

Several ranks agree on the stop iteration at log windows (every `log_every` iterations) only, with one
small collective there, instead of one per step: a signal that reaches the ranks steps apart stops them
all at the next window. A single process stops after the step in flight.
"""

from __future__ import annotations

import logging
import os
import shlex
import signal
import threading

from facetrain.distributed.process_group import barrier, max_across_ranks
from facetrain.distributed.rank import world_size
from facetrain.errors import TrainingInterrupted
from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["StopOnSignalHook", "ignore_stop_signals", "stop_signals"]

log = logging.getLogger(__name__)


def stop_signals() -> tuple[int, ...]:
    """SIGTERM, SIGINT, SIGUSR2 and submitit's preemption signal (SUBMITIT_PREEMPT_SIGNAL, as submitit reads it)."""
    names = ["SIGTERM", "SIGINT", "SIGUSR2", "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2")]
    found = (getattr(signal, name, None) for name in names)  # no SIGUSR2 on Windows
    return tuple(dict.fromkeys(signum for signum in found if signum is not None))


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: loader workers ignore the stop signals and leave stopping to the main
    process (SLURM signals every process of a job step: a worker killed by SIGTERM, or by SIGUSR2's default
    action, would otherwise fail the main process mid-step)."""
    for signum in stop_signals():
        signal.signal(signum, signal.SIG_IGN)


def continue_command(run_dir) -> str:
    """The command that continues this run: its own overrides and resume=true. Without them (iterations=,
    batch_size=, loss=...) a resume would go on under the defaults, not as the interrupted run would have."""
    from hydra.core.hydra_config import HydraConfig

    task = [str(o) for o in HydraConfig.get().overrides.task] if HydraConfig.initialized() else []
    own = [o for o in task if o.split("=", 1)[0].lstrip("+~") not in ("resume", "hydra.run.dir", "run_dir")]
    return " ".join(["facetrain train", *map(shlex.quote, own), "resume=true", shlex.quote(f"hydra.run.dir={run_dir}")])


class StopOnSignalHook(Hook):
    def __init__(self):
        self.received: int | None = None  # the signal this process received
        self.agreed: int = 0  # the signal the ranks agreed to stop for (0: go on)
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.received == signum and "TORCHELASTIC_RUN_ID" in os.environ:
            # under torchrun the repeat is the launcher passing on what SLURM (at a time limit, on scancel) already
            # sent every process of the step, workers included: not a second request (torchrun's own deadline,
            # --shutdown_timeout, then SIGKILLs a rank that does not stop)
            return
        if self.received == signum:  # asked twice: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.received = signum
        when = "the current iteration" if world_size() <= 1 else "the next log window (every rank stops there)"
        log.warning("received %s: stopping after %s", signal.Signals(signum).name, when)

    def on_start(self, state: TrainState) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may install handlers (e.g. a launcher's worker thread)
        for signum in stop_signals():
            self._previous[signum] = signal.signal(signum, self._handle)

    def on_log(self, state: TrainState, means: dict[str, float]) -> None:
        """Every rank logs at the same iterations: there they agree (a signal may reach them steps apart)."""
        if world_size() > 1:
            self.agreed = max_across_ranks(self.received or 0)

    def after_step(self, state: TrainState) -> None:
        received = self.agreed if world_size() > 1 else (self.received or 0)
        if not received:
            return
        name = signal.Signals(received).name
        if state.bad_windows == 0:  # the same on every rank (the window means are averaged over them)
            state.save(state.checkpoint)
            where = f"checkpoint saved at iteration {state.iteration} to {state.checkpoint}"
        else:
            where = f"{state.checkpoint} keeps the last good state"
        barrier()  # no rank leaves (and maybe ends the job step) before rank 0 has written last.pt
        log.warning("%s: %s", name, where)
        raise TrainingInterrupted(
            f"stopped by {name} at iteration {state.iteration}; {where}; continue with "
            f"`{continue_command(state.run_dir)}` (or resume=auto)", received)

    def on_end(self, state: TrainState) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
