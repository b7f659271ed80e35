"""ReportCallback: `facetrain report` on the sweep directory at the end of every `facetrain train -m`."""

from __future__ import annotations

import sys
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

__all__ = ["ReportCallback"]


class ReportCallback(Callback):
    """Registered under `hydra.callbacks` after sweep_status, so it runs first (Hydra ends callbacks in reverse):
    the table comes before the lines naming failed jobs, and the sweep's exit status stays sweep_status's.

    Args:
        enabled: false turns the report off (`hydra.callbacks.report.enabled=false`).
        overrides: report.yaml overrides (`["eval=lfw","x=alpha"]` on the command line).
    """

    def __init__(self, enabled: bool = True, overrides: list[str] | None = None):
        self.enabled = enabled
        self.overrides = list(overrides or [])

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if not self.enabled:
            return
        from facetrain.errors import user_error_in
        from facetrain.report.build import build_report
        from facetrain.report.compose import compose_primary, quote

        try:
            cfg = compose_primary("report", [f"dirs=[{quote(config.hydra.sweep.dir)}]", *map(str, self.overrides)])
            build_report(cfg)
        except Exception as err:  # a report must never hide or change the sweep's own outcome
            why = user_error_in(err) or f"{type(err).__name__}: {err}"
            print(f"facetrain: no sweep report ({str(why).strip().splitlines()[0]}); "
                  f"run `facetrain report {config.hydra.sweep.dir}` to retry", file=sys.stderr)
