"""`facetrain report eval=lfw`: score runs that have no protocol numbers yet, through `facetrain eval`'s code path."""

from __future__ import annotations

from hydra.errors import HydraException
from hydra.utils import instantiate
from omegaconf import DictConfig

from facetrain.errors import FacetrainError
from facetrain.report.compose import compose_primary, quote
from facetrain.report.runs import RunRecord, load_run

__all__ = ["evaluate_runs"]


def evaluate_runs(runs: list[RunRecord], protocol: str, overrides: list[str]) -> list[RunRecord]:
    """Each completed run (or one that recorded no status) with a checkpoint and no `<protocol>/...` metric is scored (as `facetrain eval PROTOCOL
    model=RUN`, writing RUN/eval_<protocol>/ and the numbers into RUN/metrics.json); returns the runs re-read.

    A run that cannot be scored (no checkpoint, an eval error) keeps its row; the reason is printed.
    """
    done = []
    for run in runs:
        if run.status not in ("completed", "unknown") or any(k.startswith(f"{protocol}/") for k in run.metrics):
            done.append(run)
            continue
        if not (run.dir / "checkpoints" / "last.pt").is_file():
            print(f"report: job {run.name}: not evaluated (no checkpoints/last.pt)")
            done.append(run)
            continue
        print(f"report: job {run.name}: facetrain eval {protocol} model={run.dir}", flush=True)
        own = [f"model={quote(run.dir)}", f"run_dir={quote(run.dir / f'eval_{protocol}')}", "progress=false"]
        cfg = _eval_config(protocol, own, overrides)
        try:
            instantiate(cfg.protocol.evaluate)(cfg)
        except FacetrainError as err:
            print(f"report: job {run.name}: eval {protocol} failed: {err}")
        done.append(load_run(run.dir, run.name))
    return done


def _eval_config(protocol: str, own: list[str], overrides: list[str]) -> DictConfig:
    """configs/eval.yaml for one run; a bad protocol name or override is the user's to fix, in one line."""
    try:
        return compose_primary("eval", [f"protocol={protocol}", *own, *overrides])
    except HydraException as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise FacetrainError(f"eval={protocol} with eval_overrides={overrides}: {first}; use a protocol of "
                             "`facetrain eval --help` (eval=lfw) and eval.yaml keys") from None
