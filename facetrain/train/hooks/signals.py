"""StopOnSignalHook: SIGTERM / SIGINT finish the step in flight, save last.pt at that iteration, and stop.

SLURM and Kubernetes send SIGTERM before killing a job; Ctrl-C sends SIGINT. Either way the run ends
with a checkpoint at the current iteration and exit status 128 + the signal number, and
`facetrain train resume=true` (or `resume=auto` in a requeued job) continues exactly. A second signal
of the same kind while the first is handled interrupts at once, as Ctrl-C twice does elsewhere.
"""

from __future__ import annotations

import logging
import signal
import threading

from facetrain.distributed.process_group import max_across_ranks
from facetrain.errors import TrainingInterrupted
from facetrain.train.hooks.base import Hook
from facetrain.train.state import TrainState

__all__ = ["STOP_SIGNALS", "StopOnSignalHook", "ignore_stop_signals"]

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def ignore_stop_signals(_worker_id: int = 0) -> None:
    """DataLoader `worker_init_fn`: loader workers ignore the stop signals and leave stopping to the main
    process (a worker killed by SIGTERM would otherwise fail the main process mid-step)."""
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


class StopOnSignalHook(Hook):
    def __init__(self):
        self.received: int | None = None
        self._previous: dict[int, object] = {}

    def _handle(self, signum: int, frame) -> None:
        if self.received == signum:  # asked twice: stop now
            signal.signal(signum, self._previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
            return
        self.received = signum
        log.warning("received %s: stopping after the current iteration", signal.Signals(signum).name)

    def on_start(self, state: TrainState) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # only the main thread may install handlers (e.g. a launcher's worker thread)
        for signum in STOP_SIGNALS:
            self._previous[signum] = signal.signal(signum, self._handle)

    def after_step(self, state: TrainState) -> None:
        received = max_across_ranks(self.received or 0)  # a signal may reach the ranks steps apart: stop together
        if not received:
            return
        name = signal.Signals(received).name
        if state.bad_windows == 0:  # the same on every rank (the window means are averaged over them)
            state.save(state.checkpoint)
            where = f"checkpoint saved at iteration {state.iteration} to {state.checkpoint}"
        else:
            where = f"{state.checkpoint} keeps the last good state"
        log.warning("%s: %s", name, where)
        raise TrainingInterrupted(
            f"stopped by {name} at iteration {state.iteration}; {where}; continue with "
            f"`facetrain train resume=true hydra.run.dir={state.run_dir}` (or resume=auto)", received)

    def on_end(self, state: TrainState) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
