"""`facetrain report eval=lfw`: score runs that have no protocol numbers yet, through `facetrain eval`'s code path."""

from __future__ import annotations

from dataclasses import replace

from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig

from facetrain.errors import FacetrainError
from facetrain.report.compose import compose_primary, quote
from facetrain.report.runs import RunRecord, read_run_metrics

__all__ = ["evaluate_runs"]


def evaluate_runs(runs: list[RunRecord], protocol: str, overrides: list[str]) -> list[RunRecord]:
    """Score each run that completed (or recorded no status) and has no `<protocol>/...` metric, as `facetrain
    eval PROTOCOL model=RUN` would (RUN/eval_<protocol>/, numbers merged into RUN/metrics.json); the runs re-read.

    A run trained with its own `paths.data=` is scored on that data's trees (what its validation used), unless
    `overrides` say otherwise. A run that cannot be scored (no checkpoint, an eval error) keeps its row; the
    reason is printed.
    """
    return [_score(run, protocol, overrides) if _wants_scoring(run, protocol) else run for run in runs]


def _wants_scoring(run: RunRecord, protocol: str) -> bool:
    return run.status in ("completed", "unknown") and not any(k.startswith(f"{protocol}/") for k in run.metrics)


def _score(run: RunRecord, protocol: str, overrides: list[str]) -> RunRecord:
    if not (run.dir / "checkpoints" / "last.pt").is_file():
        print(f"report: job {run.name}: not evaluated (no checkpoints/last.pt)")
        return run
    own = [f"model={quote(run.dir)}", f"run_dir={quote(run.dir / f'eval_{protocol}')}", "progress=false",
           *_own_data(run)]
    cfg = _eval_config(protocol, own, overrides)
    print(f"report: job {run.name}: facetrain eval {protocol} model={run.dir}", flush=True)
    try:
        instantiate(cfg.protocol.evaluate)(cfg)
    except FacetrainError as err:
        print(f"report: job {run.name}: eval {protocol} failed: {err}")
    return replace(run, metrics=read_run_metrics(run.dir))


def _own_data(run: RunRecord) -> list[str]:
    """The run's own `paths.data=` override, so `eval=lfw` finds the LFW tree the run was validated on."""
    data = run.overrides.get("paths.data")
    return [f"paths.data={quote(data)}"] if data else []


def _eval_config(protocol: str, own: list[str], overrides: list[str]) -> DictConfig:
    """configs/eval.yaml for one run; a bad protocol name or override is the user's to fix, in one line."""
    try:
        return compose_primary("eval", [f"protocol={protocol}", *own, *overrides])
    except HydraException as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FacetrainError(f"eval={protocol} with eval_overrides={overrides}: {first}; use a protocol of "
                             "`facetrain eval --help` (eval=lfw) and eval.yaml keys") from None
