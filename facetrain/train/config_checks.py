"""Checks of `facetrain train`'s config before anything runs: each key's type and range, one line per mistake.

A table of key -> Rule, not Hydra structured configs: the keys it checks take mixed values (`alpha`: a
number, `auto` or `trained`; `resume`: true, false or `auto`), which OmegaConf 2.3's schemas cannot
type; a schema's type error leaves Hydra as a multi-line message with exit status 1, not facetrain's
one line with exit status 2; and the groups' options (data=synth|folder|rec, schedule=...) have keys of
their own. Keys an option does not have are skipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from facetrain.config import check_alpha
from facetrain.errors import FacetrainError

__all__ = ["TRAIN_RULES", "Rule", "check_channels", "check_rules", "check_train_config"]

_ABSENT = object()


@dataclass(frozen=True)
class Rule:
    """What one key accepts.

    Args:
        kind: `integer`, `number`, `boolean`, `text`, `integers` (a list of integers), `choice` or `device`.
        meaning: what the key is, for the message.
        low: the smallest value allowed (of each list item for `integers`).
        above: values must be greater than this.
        high: the largest value allowed.
        choices: the values a `choice` takes.
        null: null is allowed too.
        length: the number of items an `integers` list must have.
        words: strings accepted besides the kind's values (`auto`).
    """

    kind: str
    meaning: str
    low: float | None = None
    above: float | None = None
    high: float | None = None
    choices: tuple = ()
    null: bool = False
    length: int | None = None
    words: tuple[str, ...] = ()

    def expected(self) -> str:
        """`an integer >= 1`, `a number in (0, 1]`, `one of auto, bf16, fp16, fp32`, `null or ...`."""
        bounds = []
        if self.above is not None:
            bounds.append(f"> {_bound(self.above)}")
        if self.low is not None:
            bounds.append(f">= {_bound(self.low)}")
        if self.high is not None:
            bounds.append(f"<= {_bound(self.high)}")
        shown = " and ".join(bounds)
        what = {
            "integer": f"an integer {shown}",
            "number": f"a number {shown}",
            "boolean": "true or false",
            "text": "a string",
            "integers": f"a list of {f'{self.length} ' if self.length else ''}integers {shown}",
            "choice": "one of " + ", ".join(_show(c) for c in self.choices),
            "device": "auto, cpu, cuda or cuda:N",
        }[self.kind].rstrip()
        what = " or ".join([*self.words, what])
        return f"null or {what}" if self.null else what

    def accepts(self, value) -> bool:
        if value is None:
            return self.null
        if isinstance(value, str) and value.lower() in self.words:
            return True
        if self.kind == "integers":
            return (isinstance(value, list | tuple) and (self.length is None or len(value) == self.length)
                    and all(_is_int(v) and self._in_range(v) for v in value))
        if self.kind == "choice":
            return any(value == c and type(value) is type(c) for c in self.choices) or \
                (isinstance(value, str) and value.lower() in self.choices)
        return {
            "integer": lambda: _is_int(value) and self._in_range(value),
            "number": lambda: _is_number(value) and self._in_range(value),
            "boolean": lambda: isinstance(value, bool),
            "text": lambda: isinstance(value, str),
            "device": lambda: _is_device(value),
        }[self.kind]()

    def _in_range(self, value) -> bool:
        return ((self.low is None or value >= self.low) and (self.above is None or value > self.above)
                and (self.high is None or value <= self.high))


def _bound(x: float) -> str:
    """A limit as the user would type it: 4294967295, not 4.29497e+09."""
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _is_device(value) -> bool:
    if not isinstance(value, str):
        return False
    try:
        return value == "auto" or torch.device(value) is not None
    except RuntimeError:
        return False


def _show(value) -> str:
    """A value as the command line spells it: true, null, 'abc', 5."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    return repr(value) if isinstance(value, str) else str(value)


# In the order they are checked: `iterations` before the keys interpolated from it (warm-up, milestones).
TRAIN_RULES: dict[str, Rule] = {
    "seed": Rule("integer", "the seed of init, data order and augmentation", low=0, high=2**32 - 1),
    "device": Rule("device", "where training runs"),
    "iterations": Rule("integer", "the training length, in iterations", low=1),
    "batch_size": Rule("integer", "images per iteration, over all ranks", low=1),
    "nproc": Rule("integer", "processes on this machine", low=1),
    "embedding_dim": Rule("integer", "the backbone's output size", low=1),
    "input_size": Rule("integers", "[height, width] of the crops, in pixels", low=1, length=2),
    "shard_classifier": Rule("boolean", "split the class weights over the ranks"),
    "fused_class_update": Rule("boolean", "step the class weights chunk by chunk, without their whole gradient"),
    "sync_bn": Rule("boolean", "BatchNorm statistics over the global batch"),
    "precision": Rule("choice", "the compute precision", choices=("auto", "bf16", "fp16", "fp32")),
    "channels_last": Rule("boolean", "NHWC memory format"),
    "compile": Rule("boolean", "torch.compile the backbone"),
    "deterministic": Rule("boolean", "deterministic cuDNN algorithms"),
    "finetune.backbone_lr_mult": Rule("number", "the backbone's share of optim.lr", low=0),
    "finetune.freeze_bn": Rule("boolean", "keep the backbone's BatchNorm as pretrained"),
    "finetune.classifier": Rule("choice", "how the class weights start", choices=("random", "class_means")),
    "warmup.iterations": Rule("integer", "the warm-up's length, 0 = none", low=0),
    "warmup.start_factor": Rule("number", "the first iteration's share of optim.lr", above=0, high=1),
    "clip_grad_norm": Rule("number", "the largest global gradient norm, null = no clipping", above=0, null=True),
    "clip_grad_scope": Rule("choice", "what clip_grad_norm clips", choices=("model", "all")),
    "diverged_windows": Rule("integer", "logged windows with a non-finite loss before the run stops", low=1),
    "resume": Rule("choice", "continue from checkpoints/last.pt", choices=(True, False, "auto")),
    "resume_strict": Rule("boolean", "refuse a resume that changes the model"),
    "init_from": Rule("text", "a checkpoint or run directory for the backbone's weights", null=True),
    "log_every": Rule("integer", "iterations between progress updates", low=1),
    "checkpoint_every": Rule("integer", "iterations between checkpoints", low=1),
    "progress": Rule("boolean", "show the progress bar"),
    "val.every": Rule("integer", "iterations between validations, 0 = off", low=0),
    "val.root": Rule("text", "the LFW-style validation tree", null=True),
    "val.pairs_per_fold": Rule("integer", "pairs of each kind scored per fold, null = all", low=1, null=True),
    "val.metric": Rule("text", "the metric best.pt maximizes"),
    "val.mirror": Rule("choice", "how mirrored features combine", choices=("sum", "concat", "none")),
    "val.batch_size": Rule("integer", "the validation's embedding batch size", low=1),
    "data.num_workers": Rule("integer", "data loading processes, 0 = the main process, auto = this rank's CPUs - 1",
                             low=0, words=("auto",)),
    "data.hflip": Rule("boolean", "random horizontal mirroring"),
    "data.decode": Rule("choice", "where JPEGs are decoded: loader workers or the GPU", choices=("cpu", "cuda")),
    "data.fit": Rule("choice", "how images meet input_size", choices=("resize", "crop")),
    "optim.lr": Rule("number", "the base learning rate", low=0),
    "optim.momentum": Rule("number", "the momentum", low=0),
    "optim.weight_decay": Rule("number", "the weight decay", low=0),
    "schedule.milestones": Rule("integers", "iterations where the rate drops", low=0),
    "schedule.gamma": Rule("number", "the factor at each milestone", above=0),
    "schedule.T_max": Rule("integer", "iterations to reach eta_min", low=1),
    "schedule.eta_min": Rule("number", "the final learning rate", low=0),
    "schedule.total_iters": Rule("integer", "iterations to reach 0", low=1),
    "schedule.power": Rule("number", "the decay's exponent", above=0),
}


def _value(cfg: DictConfig, key: str):
    """The key's resolved value (plain lists), _ABSENT when this config has no such key."""
    try:
        value = OmegaConf.select(cfg, key, default=_ABSENT, throw_on_missing=True)
    except OmegaConfBaseException as err:
        raise FacetrainError(f"{key} cannot be read: {str(err).splitlines()[0]}") from None
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, ListConfig) else value


def check_train_config(cfg: DictConfig, rules: dict[str, Rule] = TRAIN_RULES) -> None:
    """Refuse the first key whose value its Rule does not accept, in one line naming what it takes."""
    check_alpha(cfg.alpha)
    check_rules(cfg, rules)
    check_channels(cfg)


def check_channels(cfg: DictConfig) -> None:
    """The data's channels against the backbone's first convolution: a mismatch (`data=mnist5k` into the default
    colour small_cnn) otherwise stops at the first step with a convolution's traceback. Image files always decode
    to 3 channels; the digit sets say theirs in `data.dataset.channels`."""
    net = _value(cfg, "backbone.in_channels")
    data = _value(cfg, "data.dataset.channels")
    data = 3 if data is _ABSENT else data
    if net is _ABSENT or net == data:
        return
    fix = ("backbone=lenet_pp (the digits' network) or data.dataset.channels=3 (grey repeated)" if data == 1
           else "backbone.in_channels=3")
    raise FacetrainError(f"the data gives {data}-channel images but the backbone takes {net} "
                         f"(backbone.in_channels={net}); use {fix}")


def check_rules(cfg: DictConfig, rules: dict[str, Rule]) -> None:
    """`check_train_config` for any command's config: each key of `rules` this config has, in order."""
    for key, rule in rules.items():
        value = _value(cfg, key)
        if value is not _ABSENT and not rule.accepts(value):
            raise FacetrainError(f"{key}={_show(value)} must be {rule.expected()} ({rule.meaning})")
