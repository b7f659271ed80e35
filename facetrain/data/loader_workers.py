"""`data.num_workers: auto`: as many loader workers as this rank has CPUs, less the one its own process uses."""

from __future__ import annotations

import os

from facetrain.errors import FacetrainError

__all__ = ["cpus_per_rank", "loader_workers"]


def cpus_per_rank() -> int:
    """The CPUs this process may run on (its affinity: taskset, cgroups, SLURM's binding), shared by the
    LOCAL_WORLD_SIZE ranks torchrun started on this machine."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def loader_workers(value) -> int:
    """`auto` -> cpus_per_rank() - 1 (0 on a one-CPU share: a worker would only compete with the step);
    a non-negative integer as it is."""
    if isinstance(value, str) and value.lower() == "auto":
        return cpus_per_rank() - 1
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise FacetrainError(f"data.num_workers={value!r} must be auto or an integer >= 0 (loader processes)")
    return value
