"""Hook: what the training loop calls at its fixed points; HookList runs them, rank 0 alone where asked."""

from __future__ import annotations

from collections.abc import Iterable

from facetrain.distributed.rank import is_main_process
from facetrain.train.state import TrainState

__all__ = ["Hook", "HookList"]


class Hook:
    """Override the points you need. The loop calls, in order:

    `on_start` once; per iteration, after the step, `on_log` (every `log_every` iterations and at the
    last one, with the window's mean statistics) then `after_step`; `on_end` once (also when training
    stops early). A hook with `main_process_only = True` (writing files, drawing a bar) runs on rank 0 only.
    """

    main_process_only: bool = False

    def on_start(self, state: TrainState) -> None:
        pass

    def on_log(self, state: TrainState, means: dict[str, float]) -> None:
        pass

    def after_step(self, state: TrainState) -> None:
        pass

    def on_end(self, state: TrainState) -> None:
        pass


class HookList:
    """Calls each point on every hook that belongs to this process, in the order given."""

    def __init__(self, hooks: Iterable[Hook]):
        main = is_main_process()
        self.hooks = [hook for hook in hooks if main or not hook.main_process_only]

    def on_start(self, state: TrainState) -> None:
        for hook in self.hooks:
            hook.on_start(state)

    def on_log(self, state: TrainState, means: dict[str, float]) -> None:
        for hook in self.hooks:
            hook.on_log(state, means)

    def after_step(self, state: TrainState) -> None:
        for hook in self.hooks:
            hook.after_step(state)

    def on_end(self, state: TrainState) -> None:
        for hook in self.hooks:
            hook.on_end(state)
