"""Shared test helpers (no tests, no fixtures): real configs shrunk to seconds, and the CLI run in or out of process."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import DictConfig, open_dict

from facetrain.data.synth import SynthSpec

REPO = Path(__file__).resolve().parents[1]
PROTOCOL_FIXTURES = REPO / "tests" / "fixtures" / "protocols"  # provenance, licences and sums: its README.md

TINY_SPEC = SynthSpec(seed=3, train_identities=6, train_min_images=4, train_max_images=6, lfw_folds=10,
                      lfw_pairs_per_fold=2, lfw_identities_per_fold=3, lfw_max_images=4)


def tiny_train_overrides(data_root: Path, run_dir: Path) -> list[str]:
    return [
        f"paths.data={data_root}", f"run_dir={run_dir}", "device=cpu", "iterations=4", "batch_size=8",
        "log_every=2", "checkpoint_every=2", "data.num_workers=0", "progress=false", "embedding_dim=16",
        "backbone.channels=[4,8,8,16]", "val.every=0",
    ]


def compose_config(name: str, overrides: list[str]) -> DictConfig:
    """The real primary config `name` with overrides, outside a Hydra run (as tests need)."""
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose(config_name=name, overrides=overrides)
    with open_dict(cfg):
        cfg.pop("hydra", None)
    return cfg


def run_cli(*args: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `facetrain ARGS` in this process (`facetrain.cli.main`, Hydra and all), returning its output and exit
    status as a finished process would. A fresh process costs seconds of imports; what a process would keep from
    one call to the next (Hydra's globals, logging handlers, the launch time, cwd, environment) is put back."""
    from facetrain.cli import main

    out, err = io.StringIO(), io.StringIO()
    with _process_state(cwd, env), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
            code = 0
        except SystemExit as stop:
            code = _exit_status(stop.code)
    proc = subprocess.CompletedProcess(["facetrain", *args], code, out.getvalue(), err.getvalue())
    if check and code != 0:
        raise AssertionError(f"facetrain {' '.join(args)} failed ({code}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def run_cli_process(*args: str, cwd: Path, env: dict | None = None, check: bool = True) -> subprocess.CompletedProcess:
    """Run `facetrain ARGS` as a user would (a fresh `python -m facetrain.cli`), returning its output."""
    full_env = os.environ | {"PYTHONUNBUFFERED": "1"} | (env or {})
    proc = subprocess.run([sys.executable, "-m", "facetrain.cli", *args], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"facetrain {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def _exit_status(code) -> int:
    """What `sys.exit(code)` leaves as a process's status: None is 0, a message is 1 (printed to stderr)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    print(code, file=sys.stderr)
    return 1


@contextlib.contextmanager
def _process_state(cwd: Path, env: dict | None):
    """cwd and environment for one in-process run; afterwards Hydra, logging, argv and the launch time as before."""
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.hydra_config import HydraConfig

    import facetrain.config

    saved_env, saved_cwd, saved_argv = dict(os.environ), os.getcwd(), sys.argv[:]
    saved_hydra_cfg, saved_launch = HydraConfig.instance().cfg, facetrain.config._LAUNCH_TIME[:]
    saved_logging = _logging_state()
    GlobalHydra.instance().clear()
    facetrain.config._LAUNCH_TIME.clear()  # a fresh process reads its own clock for the run directory
    os.environ.update(env or {})
    os.chdir(cwd)
    try:
        yield
    finally:
        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = saved_hydra_cfg
        facetrain.config._LAUNCH_TIME[:] = saved_launch
        _restore_logging(saved_logging)
        os.chdir(saved_cwd)
        sys.argv[:] = saved_argv
        os.environ.clear()
        os.environ.update(saved_env)


def _loggers() -> list[logging.Logger]:
    manager = logging.Logger.manager
    return [logging.getLogger()] + [lg for lg in manager.loggerDict.values() if isinstance(lg, logging.Logger)]


def _logging_state() -> dict[str, tuple]:
    return {lg.name: (lg.handlers[:], lg.level, lg.propagate, lg.disabled) for lg in _loggers()}


def _restore_logging(saved: dict[str, tuple]) -> None:
    """Hydra configured logging for the job (files in its run directory): close those handlers, put back ours."""
    for logger in _loggers():
        handlers, level, propagate, disabled = saved.get(logger.name, ([], logging.NOTSET, True, False))
        for handler in logger.handlers:
            if handler not in handlers:
                handler.close()
        logger.handlers[:] = handlers
        logger.setLevel(level)
        logger.propagate, logger.disabled = propagate, disabled


def fork_gloo_ranks(worker, world: int, out: Path) -> list:
    """Run `worker(rank, port, out)` in `world` processes on a free local port and load what each saved as
    out/rank<r>.pt. Fork: the children start with torch and facetrain already imported (a spawn re-imports
    them: ~20 s)."""
    import socket

    import torch
    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.start_processes(worker, args=(port, str(out)), nprocs=world, join=True, start_method="fork")
    return [torch.load(Path(out) / f"rank{r}.pt", weights_only=True) for r in range(world)]


@contextlib.contextmanager
def gloo_rank(rank: int, port: int, world: int, timeout_s: float = 30):
    """In a forked worker of `fork_gloo_ranks`: one thread (a forked child must not enter its parent's OpenMP
    pool) and a gloo group for the block. The short timeout makes a rank left alone in a collective fail the
    test instead of hanging it."""
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world,
                            timeout=timedelta(seconds=timeout_s))
    try:
        yield
    finally:
        dist.destroy_process_group()
