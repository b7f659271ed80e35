"""requeue_through_submitit: after a SIGUSR2 stop has saved last.pt, leave the way submitit's requeue expects.

In a job submitit runs (Hydra's submitit launcher), submitit's runner installs its own handler for its
preemption signal (SIGUSR2 unless SUBMITIT_PREEMPT_SIGNAL says otherwise), `checkpoint_and_try_requeue`.
On the rank with SLURM_PROCID 0 it dumps the job's resubmission (the launcher's `checkpoint()`, the same
call again), runs `scontrol requeue <job>` and leaves with `sys.exit(-1)`: a SystemExit, so no task writes
the result file that would tell the submitting process the job is over; on a timeout it first counts down
`max_num_timeout`, and with none left (or a timeout the function cannot checkpoint) it raises instead of
requeueing. On the other ranks it does nothing (SLURM's requeue ends them). Called inside the training
loop it would stop rank 0 mid-step, with no checkpoint, and leave the others waiting in a collective.

facetrain therefore takes the signal itself (StopOnSignalHook: every rank stops at one iteration, last.pt
is written there), puts submitit's handler back, and then calls it, outside the loop, from here.
"""

from __future__ import annotations

import logging
import signal

from facetrain.errors import TrainingInterrupted

__all__ = ["requeue_through_submitit"]

log = logging.getLogger(__name__)


def _submitit_handler(signum: int):
    """The handler submitit's runner installed for `signum`, or None outside a submitit job."""
    handler = signal.getsignal(signum)
    owner = getattr(handler, "__self__", None)
    if owner is None or not type(owner).__module__.startswith("submitit."):
        return None
    return handler if handler.__func__.__name__ == "checkpoint_and_try_requeue" else None


def requeue_through_submitit(interrupted: TrainingInterrupted) -> None:
    """Hand a stop by submitit's preemption signal to submitit: on rank 0 it requeues the job and exits
    (SystemExit); returns where it does not requeue (other ranks, no resubmission left), and the
    interruption then ends the job as any other."""
    handler = _submitit_handler(interrupted.signum)
    if handler is None:
        return
    log.warning("last.pt is written; submitit's handler takes over (on rank 0 it requeues the job)")
    try:
        handler(interrupted.signum, None)
    except Exception as err:  # noqa: BLE001 - submitit's UncompletedJobError: no requeue, say why
        log.warning("submitit did not requeue the job: %s", err)
