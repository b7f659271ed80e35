"""Data-parallel runs under torchrun: the process group's life, each rank's device, and what ranks agree on.

torchrun starts one process per device and tells each its place through the environment (`WORLD_SIZE`,
`RANK`, `LOCAL_RANK`, `MASTER_ADDR`/`MASTER_PORT`). The group is joined before Hydra runs, so every rank
can take rank 0's launch time for `${ft.now:...}` and all of them write into one run directory.

SLURM (`srun`, or Hydra's submitit launcher: one task per GPU) starts the processes itself and describes
them in its own variables; `adopt_slurm_environment` translates those into torchrun's when torchrun's are
absent, so the rest of the code sees one contract.

`facetrain train nproc=N` starts torchrun's elastic launcher in this process, N ranks on this machine.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator, MutableMapping
from datetime import datetime, timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from facetrain.config import set_launch_time
from facetrain.distributed.rank import is_main_process, world_size
from facetrain.errors import FacetrainError

__all__ = ["adopt_slurm_environment", "average_across_ranks", "barrier", "distributed_run", "first_host", "from_main",
           "launch_local", "launched_world_size", "local_rank", "main_first", "main_outcome", "max_across_ranks",
           "quiet_hydra_overrides", "slurm_environment"]

T = TypeVar("T")


def launch_local(nproc: int, args: list[str]) -> None:
    """Run `torchrun --standalone --nproc_per_node=N -m facetrain.cli train ARGS` here and wait for it.

    Exits with the status of the first rank that failed (a user error's 2, a divergence's 3, ...).
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import main as torchrun

    try:
        torchrun(["--standalone", f"--nproc_per_node={nproc}", "-m", "facetrain.cli", "train", *args])
    except ChildFailedError as err:
        _, failure = err.get_first_failure()
        raise SystemExit(failure.exitcode if failure.exitcode > 0 else 1) from None


def first_host(nodelist: str) -> str:
    """The first host of a SLURM node list: `gpu[03-05,09],cpu1` -> `gpu03` (rank 0's machine in block order)."""
    group = re.split(r",(?![^\[]*\])", nodelist.strip(), maxsplit=1)[0]  # up to the first comma outside [...]
    return re.sub(r"\[([^\]]*)\]", lambda m: m.group(1).split(",")[0].split("-")[0], group)


def slurm_environment(env: MutableMapping[str, str]) -> dict[str, str]:
    """torchrun's variables for a process SLURM started as one task of a step with several (`srun`, submitit).

    RANK = SLURM_PROCID, WORLD_SIZE = SLURM_NTASKS, LOCAL_RANK = SLURM_LOCALID, MASTER_ADDR = MASTER_ADDR if
    the job exported one, else the first host of SLURM_JOB_NODELIST, MASTER_PORT = MASTER_PORT if set, else
    one derived from the job id (every task of the job derives the same). Empty when torchrun's WORLD_SIZE is already set, outside a SLURM step (the
    batch script itself runs once, whatever --ntasks says), or for a single task.
    """
    if "WORLD_SIZE" in env or "SLURM_STEP_ID" not in env or int(env.get("SLURM_NTASKS", "1")) <= 1:
        return {}
    tasks, nodes = int(env["SLURM_NTASKS"]), int(env.get("SLURM_JOB_NUM_NODES", env.get("SLURM_NNODES", "1")))
    return {"RANK": env["SLURM_PROCID"], "WORLD_SIZE": str(tasks), "LOCAL_RANK": env.get("SLURM_LOCALID", "0"),
            "LOCAL_WORLD_SIZE": str(tasks // max(nodes, 1)),
            "MASTER_ADDR": env.get("MASTER_ADDR") or first_host(env.get("SLURM_JOB_NODELIST",
                                                                       env.get("SLURM_NODELIST", "127.0.0.1"))),
            "MASTER_PORT": env.get("MASTER_PORT", str(20000 + int(env.get("SLURM_JOB_ID", "0")) % 40000))}


def adopt_slurm_environment() -> bool:
    """Under a multi-task SLURM step without torchrun, export torchrun's variables; True if it did."""
    found = slurm_environment(os.environ)
    os.environ.update(found)
    return bool(found)


def launched_world_size() -> int:
    """WORLD_SIZE as the launcher set it (1 outside torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def local_rank() -> int:
    """This process's index on its machine: the CUDA device it drives."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def _backend() -> str:
    """gloo for CPU tensors; NCCL for CUDA tensors when CUDA is present (one group serves `device=cpu` too)."""
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def _agree_on_launch_time() -> None:
    """Every rank takes rank 0's clock, so `${ft.now:...}` in hydra.run.dir names one directory."""
    stamp = [datetime.now().isoformat()]
    dist.broadcast_object_list(stamp, src=0)
    set_launch_time(datetime.fromisoformat(stamp[0]))


def quiet_hydra_overrides() -> list[str]:
    """Hydra overrides for ranks other than 0: no `.hydra/` copy, no log file, warnings only on the console."""
    if is_main_process():
        return []
    return ["hydra.output_subdir=null", "++hydra.job_logging.root.handlers=[console]",
            "++hydra.job_logging.root.level=WARNING"]


@contextlib.contextmanager
def distributed_run() -> Iterator[None]:
    """Join the process group torchrun (or SLURM) describes (if WORLD_SIZE > 1) for the block, then leave it.

    Under Hydra's submitit launcher every task runs the job function itself, after Hydra has set up its
    logging: ranks other than 0 then log warnings only.
    """
    adopt_slurm_environment()
    if launched_world_size() <= 1 or dist.is_initialized():
        yield
        return
    if local_rank() < torch.cuda.device_count():  # device=cpu may run more ranks than there are GPUs
        torch.cuda.set_device(local_rank())
    dist.init_process_group(_backend())
    try:
        _agree_on_launch_time()
        if not is_main_process():
            logging.getLogger().setLevel(logging.WARNING)
        yield
    finally:
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every rank (nothing to wait for in a single process)."""
    if world_size() > 1:
        dist.barrier()


def main_first(prepare: Callable[[], T], hours: float = 6.0) -> T | None:
    """Rank 0 calls `prepare` (synthesize a data set, index or verify a folder of millions of images) while the
    other ranks wait; its result on rank 0, None elsewhere; its error on every rank (`main_outcome`).

    The others wait on a gloo group of their own, for up to `hours`: in the process group they would give up
    after its timeout (30 minutes; NCCL's 10), sooner than rank 0 may take, and the run would die just as its
    data was ready. Told of an error there (a missing folder), they end at once with rank 0's line instead of
    waiting out those hours (under plain srun nothing else would stop them)."""
    if world_size() <= 1:
        return prepare()
    group = dist.new_group(backend="gloo", timeout=timedelta(hours=hours))
    try:
        return main_outcome(prepare, share=False, group=group)
    finally:
        dist.destroy_process_group(group)


def main_outcome(call: Callable[[], T], share: bool = True, group=None) -> T | None:
    """Rank 0 calls `call`; every rank gets its result (`share=False`: rank 0 only, the others None) or raises
    its error: a user error's own line, any other named as rank 0's. A rank never waits on a collective that
    rank 0, failed, will not reach."""
    result, failure, message = None, None, None
    if is_main_process():
        try:
            result = call()
        except BaseException as err:  # noqa: BLE001 - told to the other ranks, then raised here as it was
            failure = err
            message = (str(err) if isinstance(err, FacetrainError) else
                       f"rank 0 stopped ({type(err).__name__}: {err}); see its log")
    shared, message = from_main((result if share else None, message), group)
    if failure is not None:
        raise failure
    if message is not None:
        raise FacetrainError(message)
    return shared if share else result


def average_across_ranks(values: dict[str, float]) -> dict[str, float]:
    """The mean of each value over the ranks (every rank passes the same keys): a global batch's statistics."""
    if world_size() <= 1 or not values:
        return values
    keys = sorted(values)
    total = torch.tensor([float(values[k]) for k in keys], dtype=torch.float64)
    dist.all_reduce(total)
    return dict(zip(keys, (total / world_size()).tolist(), strict=True))


def from_main(value, group=None):
    """Rank 0's `value` (any picklable object; other ranks may pass None), on every rank: a decision that
    must be the same everywhere, taken once. An object collective: gloo on the host under NCCL runs too."""
    if world_size() <= 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0, group=group)
    return box[0]


def max_across_ranks(value: int) -> int:
    """The largest of the ranks' values (e.g. a stop signal one rank received: all stop at the same step)."""
    if world_size() <= 1:
        return value
    total = torch.tensor([int(value)], dtype=torch.int64)
    dist.all_reduce(total, op=dist.ReduceOp.MAX)
    return int(total.item())
