"""`facetrain train nproc=N`: start torchrun's elastic launcher in this process, N ranks on this machine."""

from __future__ import annotations

__all__ = ["launch_local"]


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
