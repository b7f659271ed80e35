"""SearchCheckCallback: before an Optuna search starts, its space must name keys the config has, and it must maximize.

Hydra's Optuna sweeper composes each trial's config only when it launches it, so a misspelled key would fail
every trial one by one; and the plugin minimizes by default while facetrain's trials return a score
(val/best/<val.metric>). Checked once here, at the sweep's start, before anything is written: one line, exit 2.

It also registers facetrain's Optuna sweeper (hydra_plugins.facetrain_search: a study in which no trial scored
ends as a failed sweep, whatever the launcher) before Hydra instantiates it: an editable install hides that
package from Hydra's plugin scan.
"""

from __future__ import annotations

import sys
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from facetrain.config import check_count
from facetrain.errors import FacetrainError

__all__ = ["SearchCheckCallback", "check_search"]

_ABSENT = object()


class SearchCheckCallback(Callback):
    """Registered under `hydra.callbacks` before the MLflow one; does nothing unless the sweeper is Optuna's."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        if "optuna" not in str(OmegaConf.select(config, "hydra.sweeper._target_", default="")).lower():
            return
        try:
            check_search(config, str(kwargs.get("config_name") or "train"))
        except FacetrainError as err:
            print(f"facetrain: error: {err}", file=sys.stderr)
            raise SystemExit(err.exit_status) from None  # Hydra's callback runner would swallow an Exception
        from hydra.core.plugins import Plugins

        from hydra_plugins.facetrain_search import FacetrainOptunaSweeper

        Plugins.instance().register(FacetrainOptunaSweeper)  # Hydra instantiates the sweeper after this callback


def check_search(config: DictConfig, config_name: str = "train") -> None:
    """Raise FacetrainError when the search cannot work: not maximizing, no trials, nothing to search, a key the
    config lacks, or no validation to score trials by."""
    sweeper = config.hydra.sweeper
    directions = sweeper.direction if OmegaConf.is_list(sweeper.direction) else [sweeper.direction]
    directions = [str(d).lower().split(".")[-1] for d in directions]  # the plugin's default is an enum
    if directions != ["maximize"]:
        raise FacetrainError(f"hydra.sweeper.direction={','.join(directions)} but facetrain's trials return a score to "
                             "maximize (val/best/<val.metric>); use a search preset (search=l2softmax_alpha, "
                             "search=optuna) or hydra.sweeper.direction=maximize")
    check_count("hydra.sweeper.n_trials", sweeper.get("n_trials"), 1, "trials of the study")
    check_count("hydra.sweeper.n_jobs", sweeper.get("n_jobs"), 1, "trials launched at once")
    overrides = _overrides(config)
    space = [o for o in overrides if o.is_sweep_override()]
    if not space:
        raise FacetrainError("the search has nothing to search: pick a search space (search=l2softmax_alpha, "
                             "search=arcface_margin, ...) or give one, e.g. 'alpha=tag(log, interval(1, 64))'")
    groups = set(OmegaConf.select(config, "hydra.runtime.choices", default={}) or {})
    cfg = _compose(config_name, [_one_value(o) for o in overrides if o.get_key_element() in groups
                                 or not o.is_sweep_override()])
    for override in space:
        key = override.get_key_element()
        if key not in groups and not override.is_add() and OmegaConf.select(cfg, key, default=_ABSENT) is _ABSENT:
            raise FacetrainError(f"the search space names {key}, which the config lacks{_has(cfg, key)}; correct the "
                                 "key, or choose the loss or experiment that has it (facetrain train --cfg job "
                                 "lists every key)")
    if int(OmegaConf.select(cfg, "val.every", default=0) or 0) <= 0:
        raise FacetrainError("a search scores each trial by its validation (val/best/<val.metric>), but validation "
                             "is off (val.every=0); set val.every=N, e.g. val.every=${iterations}")


def _overrides(config: DictConfig) -> list[Override]:
    """hydra.sweeper.params then the command line's overrides, the later of a key winning (as the sweeper does)."""
    params = [f"{k}={v}" for k, v in (OmegaConf.select(config, "hydra.sweeper.params", default=None) or {}).items()]
    task = [str(o) for o in config.hydra.overrides.task]
    try:
        parsed = OverridesParser.create().parse_overrides(params + task)
    except Exception as err:
        raise FacetrainError(f"the search space does not parse ({_first_line(err)}); write a space as Hydra's "
                             "sweep syntax, e.g. 'alpha=tag(log, interval(1, 64))' or 'loss.margin=interval(0.1, 0.7)'"
                             ) from None
    return list({o.get_key_element(): o for o in parsed}.values())


def _one_value(override: Override) -> str:
    """The override as typed, or a sweep of config-group choices as its first choice (enough to compose)."""
    if not override.is_sweep_override():
        return override.input_line
    first = next(iter(override.sweep_string_iterator()))
    return f"{override.get_key_element()}={first}"


def _compose(config_name: str, overrides: list[str]) -> DictConfig:
    from hydra import compose

    try:
        return compose(config_name=config_name, overrides=overrides)
    except Exception as err:
        raise FacetrainError(f"the search's fixed settings do not compose ({_first_line(err)}); correct the key or "
                             "value named there") from None


def _has(cfg: DictConfig, key: str) -> str:
    """`(loss has: margin, scale, ...)`: the keys the named key's parent does have."""
    parent = key.rpartition(".")[0]
    node = OmegaConf.select(cfg, parent, default=None) if parent else cfg
    if not OmegaConf.is_dict(node):
        return ""
    keys = [k for k in node if not str(k).startswith("_")]
    return f" ({parent or 'the top level'} has: {', '.join(map(str, keys[:12]))}{', ...' if len(keys) > 12 else ''})"


def _first_line(err: BaseException) -> str:
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    return lines[0] if lines else type(err).__name__
