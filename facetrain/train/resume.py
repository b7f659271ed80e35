"""Resuming a run: resume=true|false|auto, and what happens when the command line changed the model.

Exact resume restores every part, the optimizer, the LR schedule, the grad scaler and the RNG. Overrides
that change what a part's weights mean (backbone, head, loss, their sizes, alpha) are refused by name;
`resume_strict=false` then keeps the parts that still fit and starts the others afresh. Overrides that
change the learning-rate schedule (`iterations` moves the default milestones and warm-up; `schedule.*`,
`warmup.*`, `optim.lr`) give the new settings' schedule from the current iteration on: the rate at every
later iteration is the one an uninterrupted run with the new settings would use there.
"""

from __future__ import annotations

import logging
import re
import warnings

from omegaconf import DictConfig, OmegaConf

from facetrain.errors import FacetrainError
from facetrain.run.checkpoint import load_checkpoint, restore_state
from facetrain.sharded.state import localize_checkpoint
from facetrain.train.build import named_parts
from facetrain.train.state import TrainState

__all__ = ["MODEL_KEYS", "RESUME_MODES", "SCHEDULE_KEYS", "config_changes", "resume"]

log = logging.getLogger(__name__)

RESUME_MODES = (True, False, "auto")
MODEL_KEYS = ("backbone", "head", "loss", "embedding_dim", "input_size", "alpha")  # they shape the weights
NOT_SHAPING = ("loss.sample_rate",)  # under MODEL_KEYS, but the weights mean the same
SCHEDULE_KEYS = ("schedule", "warmup", "optim.lr")  # they decide the learning rate at each iteration


def _flat(tree, prefix: str = "") -> dict:
    if isinstance(tree, dict):
        return {k: v for key, sub in tree.items() for k, v in _flat(sub, f"{prefix}{key}.").items()}
    return {prefix[:-1]: tree}


def config_changes(saved_yaml: str, cfg: DictConfig) -> dict[str, tuple]:
    """{dotted key: (checkpoint's value, current value)} for every key that differs (resolved values)."""
    saved = _flat(OmegaConf.to_container(OmegaConf.create(saved_yaml), resolve=True))
    current = _flat(OmegaConf.to_container(cfg, resolve=True))
    missing = object()
    return {key: (saved.get(key, missing), current.get(key, missing)) for key in sorted(saved.keys() | current.keys())
            if saved.get(key, missing) != current.get(key, missing) and key not in ("resume", "resume_strict")}


def _show(value) -> str:
    return "(unset)" if not isinstance(value, str | int | float | bool | list | type(None)) else repr(value)


def _fast_forward(scheduler, iterations: int) -> None:
    """Step a freshly built LR schedule `iterations` times (any torch scheduler): the rates it then gives
    are those of an uninterrupted run, float for float."""
    with warnings.catch_warnings():  # stepping a schedule before its optimizer is the point here
        warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()`"))
        for _ in range(iterations):
            scheduler.step()


def _restore_training_objects(state: TrainState, saved: dict, new_schedule: bool) -> None:
    """The optimizer, LR schedule and grad scaler as saved; with `new_schedule`, the schedule is the new
    settings' stepped to the saved iteration, and the optimizer keeps its saved state (momentum) but takes
    that schedule's rates."""
    if not new_schedule:
        for name, obj in state.stateful.items():
            obj.load_state_dict(saved[name])
        return
    _fast_forward(state.scheduler, int(saved["iteration"]))
    rates = [{k: group[k] for k in ("lr", "initial_lr") if k in group} for group in state.optimizer.param_groups]
    for name, obj in state.stateful.items():
        if obj is not state.scheduler:
            obj.load_state_dict(saved[name])
    for group, rate in zip(state.optimizer.param_groups, rates, strict=True):
        group.update(rate)
    log.info("the learning-rate schedule changed: from iteration %d on it is the new settings' (lr %g now)",
             int(saved["iteration"]), rates[0]["lr"])


def _restore_what_fits(state: TrainState, saved: dict, new_schedule: bool) -> None:
    """resume_strict=false: load each part whose weights still fit; the optimizer starts afresh if any did not."""
    skipped = []
    for name, module in named_parts(state.model, state.loss).items():
        try:
            module.load_state_dict(saved["model"][name])
        except (RuntimeError, KeyError) as err:
            skipped.append(name)
            log.warning("resume_strict=false: %s starts afresh (%s)", name, str(err).splitlines()[0])
    state.iteration = state.start = int(saved["iteration"])
    if skipped:
        _fast_forward(state.scheduler, state.iteration)  # the fresh LR schedule, where the run is
    else:
        _restore_training_objects(state, saved, new_schedule)


def _schedule_changed(changes: dict) -> bool:
    return any(key == k or key.startswith(f"{k}.") for key in changes for k in SCHEDULE_KEYS)


def resume(state: TrainState, mode, strict: bool = True) -> None:
    """Continue `state` from its run's last.pt as `mode` says (true: it must exist; auto: if it exists)."""
    if mode not in RESUME_MODES:
        raise FacetrainError(f"resume={mode!r} is not one of true, false, auto")
    if not mode:
        return
    if not state.checkpoint.exists():
        if mode == "auto":
            log.info("resume=auto: no checkpoint in %s yet; starting from iteration 0", state.run_dir)
            return
        raise FacetrainError(
            f"resume=true but {state.checkpoint} does not exist; point hydra.run.dir=... at the run to continue")
    # mapped, not read: a sharded classifier copies only its rows of the full matrices out of the file
    fix = (f"resume={str(mode).lower()} continues the run from it: put back an intact copy, or start afresh in another run "
           "directory (hydra.run.dir=...)")
    saved = localize_checkpoint(load_checkpoint(state.checkpoint, mmap=True, fix=fix),
                                named_parts(state.model, state.loss), state.optimizer)
    changes = config_changes(saved["config"], state.cfg)
    shaping = {k: v for k, v in changes.items() if k.split(".")[0] in MODEL_KEYS and not k.endswith(NOT_SHAPING)}
    if saved.get("num_classes", state.num_classes) != state.num_classes:
        shaping["training identities"] = (saved["num_classes"], state.num_classes)
    for key, (old, new) in changes.items():
        if key not in shaping:
            log.info("resuming with a changed setting: %s: %s -> %s", key, _show(old), _show(new))
    if shaping and strict:
        listed = "; ".join(f"{k}: {_show(old)} -> {_show(new)}" for k, (old, new) in list(shaping.items())[:4])
        more = f" (and {len(shaping) - 4} more)" if len(shaping) > 4 else ""
        raise FacetrainError(
            f"resume=true with a model unlike the checkpoint's: {listed}{more}; drop those overrides to continue "
            "the run, start a new run directory, or pass resume_strict=false to keep the parts that still fit")
    if shaping:
        _restore_what_fits(state, saved, _schedule_changed(changes))
    else:  # the parts and the RNG, then the optimizer, schedule and scaler
        parts = named_parts(state.model, state.loss)
        state.iteration = state.start = restore_state(saved, parts, {}, state.device)
        _restore_training_objects(state, saved, _schedule_changed(changes))
    log.info("resumed from %s at iteration %d", state.checkpoint, state.iteration)
