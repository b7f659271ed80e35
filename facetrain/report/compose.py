"""Compose one of facetrain's primary configs in-process: inside a running Hydra app (a sweep's callback,
`facetrain report`) or outside one (tests, scripts)."""

from __future__ import annotations

from hydra import compose, initialize_config_module
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, ListConfig

__all__ = ["as_list", "compose_primary", "quote"]


def compose_primary(name: str, overrides: list[str]) -> DictConfig:
    """configs/<name>.yaml with `overrides` (without its `hydra` node)."""
    if GlobalHydra.instance().is_initialized():
        return compose(config_name=name, overrides=overrides)
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        return compose(config_name=name, overrides=overrides)


def quote(value: object) -> str:
    """A value as a quoted Hydra override value, so paths with `=`, `,` or spaces (sweep job folders) pass whole."""
    return "'" + str(value).replace("'", "\\'") + "'"


def as_list(value) -> list:
    """A key that takes one value or a list of them (`metric=lfw/auc`, `metric=[lfw/auc,lfw/eer]`) as a list."""
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple | ListConfig) else [value]
