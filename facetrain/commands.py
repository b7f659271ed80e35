"""One thin Hydra entry point per command; the work lives in importable functions."""

from __future__ import annotations

import os
import sys

import hydra
from hydra.utils import instantiate
from omegaconf import DictConfig

from facetrain.config import CONFIG_PATH
from facetrain.errors import FacetrainError, report_user_errors
from facetrain.run.job_outcome import record_outcome

__all__ = ["data_main", "eval_main", "export_main", "report_main", "train_main", "verify_main"]


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
@report_user_errors
@record_outcome
def _train_app(cfg: DictConfig) -> float | None:
    """Train; return the validation score best.pt was kept for (val/best/<val.metric>): what a sweeper such as
    hydra/sweeper=optuna maximizes. None without one (validation off, not rank 0): a sweeper counts it failed."""
    from facetrain.distributed.process_group import distributed_run
    from facetrain.train import train

    with distributed_run():  # under torchrun already joined; under the submitit launcher each task joins here
        metrics = train(cfg)
    best = metrics.get(f"val/best/{cfg.val.metric}")
    return None if best is None else float(best)


def _nproc(args: list[str]) -> int:
    """The `nproc=N` override (1 when absent)."""
    values = [arg.split("=", 1)[1] for arg in args if arg.lstrip("+").startswith("nproc=")]
    if not values:
        return 1
    if not values[-1].isdigit() or int(values[-1]) < 1:
        print(f"facetrain: error: nproc={values[-1]} must be a positive integer (processes on this machine, "
              "one per GPU)", file=sys.stderr)
        raise SystemExit(2)
    return int(values[-1])


def _check_nproc_under_a_launcher(nproc: int) -> None:
    """nproc=N starts N ranks here; under srun or torchrun the launcher has started them (nproc=N's own ranks
    carry it on, N per machine): a different count would be ignored, training on fewer GPUs than asked."""
    per_machine = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if nproc > 1 and nproc != per_machine:
        launcher = ("torchrun" if "TORCHELASTIC_RUN_ID" in os.environ else
                    "this SLURM step" if "SLURM_NTASKS" in os.environ else "the launcher")
        print(f"facetrain: error: nproc={nproc} asks for {nproc} ranks on this machine, but {launcher} already "
              f"started {per_machine} here ({os.environ.get('WORLD_SIZE')} in all); drop nproc= and start one task "
              "per GPU (srun --ntasks-per-node=GPUS, torchrun --nproc_per_node=GPUS), or use hydra/launcher=slurm",
              file=sys.stderr)
        raise SystemExit(2)


def train_main() -> None:
    """`facetrain train`; `nproc=N` starts N ranks through torchrun's launcher. Under torchrun (WORLD_SIZE > 1)
    each rank joins the process group before Hydra names the run directory, so all of them agree on it, and
    ranks other than 0 leave Hydra's files to rank 0. `srun -n N facetrain train` is read as torchrun would
    start it (SLURM's variables translated)."""
    from facetrain.distributed.process_group import adopt_slurm_environment

    adopt_slurm_environment()
    nproc = _nproc(sys.argv[1:])
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        if nproc > 1:
            from facetrain.distributed.process_group import launch_local

            launch_local(nproc, sys.argv[1:])
            return
        _train_app()
        return
    from facetrain.distributed.process_group import distributed_run, quiet_hydra_overrides

    _check_nproc_under_a_launcher(nproc)
    with distributed_run():
        sys.argv += quiet_hydra_overrides()
        _train_app()


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="eval")
@report_user_errors
@record_outcome
def eval_main(cfg: DictConfig) -> None:
    instantiate(cfg.protocol.evaluate)(cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="data")
@report_user_errors
def data_main(cfg: DictConfig) -> None:
    if cfg.action not in cfg.actions:
        raise FacetrainError(f"unknown data action {cfg.action!r}; available: {', '.join(cfg.actions)}")
    instantiate(cfg.actions[cfg.action])(cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="export")
@report_user_errors
def export_main(cfg: DictConfig) -> None:
    from facetrain.export import export_from_config

    export_from_config(cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="report")
@report_user_errors
def report_main(cfg: DictConfig) -> None:
    from facetrain.report import build_report

    build_report(cfg)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="verify")
@report_user_errors
def verify_main(cfg: DictConfig) -> None:
    from facetrain.verify import verify_from_config

    verify_from_config(cfg)
