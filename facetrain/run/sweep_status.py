"""SweepStatusCallback: at the end of a `-m` sweep, one line per job that did not complete, and exit status 1.

Each job records how it ended in its own status.json (`record_outcome`), so the summary is read from
the sweep directory: it works for jobs run in other processes or machines by a launcher plugin, too.
"""

from __future__ import annotations

import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from facetrain.run.status_file import STATUS_NAME, read_status

__all__ = ["JobStatus", "SweepStatusCallback", "sweep_jobs"]


@dataclass(frozen=True)
class JobStatus:
    """One job of a sweep: its number, its overrides, where it ran, how it ended and why."""

    num: int
    overrides: list[str]
    dir: Path
    status: str
    reason: str


class SweepStatusCallback(Callback):
    """Registered under `hydra.callbacks`; does nothing outside `-m`."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        jobs = sweep_jobs(sweep_dir)
        keys = _swept_keys(config)
        bad = [job for job in jobs if job.status != "completed"]
        for job in bad:
            print(f"facetrain: job {job.num} ({_label(job, keys)}) {job.status}: {job.reason}", file=sys.stderr)
        if not bad:
            print(f"facetrain: all {len(jobs)} jobs completed; their runs are in {sweep_dir}")
            return
        counts = Counter(job.status for job in bad)
        print(f"facetrain: {len(bad)} of {len(jobs)} jobs did not complete ("
              + ", ".join(f"{n} {s}" for s, n in counts.items())
              + f"); each job's status.json and log are in its directory under {sweep_dir}", file=sys.stderr)
        raise SystemExit(1)  # Hydra's callback runner swallows an Exception, not SystemExit


def sweep_jobs(sweep_dir: Path) -> list[JobStatus]:
    """The jobs of the sweep that last ran in `sweep_dir`, by job number.

    A job directory is one with `.hydra/hydra.yaml` or status.json written since the sweep began
    (multirun.yaml is written then), so jobs left by an earlier sweep in the same folder do not count.
    A job that recorded no status (killed outright) is reported as such.
    """
    start_file = sweep_dir / "multirun.yaml"
    start = start_file.stat().st_mtime if start_file.exists() else 0.0
    marks = [*sweep_dir.rglob(".hydra/hydra.yaml"), *sweep_dir.rglob(STATUS_NAME)]
    dirs = {(m.parent.parent if m.parent.name == ".hydra" else m.parent) for m in marks if m.stat().st_mtime >= start}
    jobs = [_job(d, fallback_num=i) for i, d in enumerate(sorted(dirs))]
    return sorted(jobs, key=lambda job: job.num)


def _job(job_dir: Path, fallback_num: int) -> JobStatus:
    hydra_file = job_dir / ".hydra" / "hydra.yaml"
    hydra_cfg = (yaml.safe_load(hydra_file.read_text()) or {}).get("hydra", {}) if hydra_file.exists() else {}
    num = hydra_cfg.get("job", {}).get("num", fallback_num)
    overrides = list(hydra_cfg.get("overrides", {}).get("task", []))
    recorded = read_status(job_dir) or {"status": "unknown", "reason": f"it recorded no {STATUS_NAME}; see its log"}
    return JobStatus(int(num), overrides, job_dir, str(recorded.get("status")), str(recorded.get("reason", "")))


def _swept_keys(config: DictConfig) -> set[str]:
    """The keys the command line swept (`alpha=-1,16`) and those of `hydra.sweeper.params`."""
    task = OmegaConf.to_container(config.hydra.overrides.task, resolve=False)
    overrides = OverridesParser.create().parse_overrides(list(task))
    keys = {o.key_or_group for o in overrides if o.is_sweep_override()}
    params = OmegaConf.select(config, "hydra.sweeper.params", default=None)
    return keys | set(params or {})


def _label(job: JobStatus, keys: set[str]) -> str:
    """`alpha=-1`: the job's values of the swept keys (its directory name when none is known)."""
    picked = [o for o in job.overrides if o.split("=", 1)[0].lstrip("+~") in keys]
    return ", ".join(picked) or job.dir.name
