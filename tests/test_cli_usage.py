"""`facetrain --help`: every command and every `facetrain data` action is listed, with an example that composes."""

import re

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

import facetrain.commands
from facetrain.cli import USAGE, _to_hydra_args, main

_LISTED = [line for line in USAGE.splitlines() if re.match(r"  [a-z]", line)]  # `  data pack   what   facetrain ...`
_EXAMPLES = [line[line.index("facetrain "):].split()[1:] for line in _LISTED]


def _data_actions() -> list[str]:
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose(config_name="data")
    return list(OmegaConf.to_container(cfg.actions, resolve=False))


def test_help_lists_every_command_and_data_action(capsys):
    main(["--help"])
    assert capsys.readouterr().out == USAGE
    listed = [line.split()[:2] for line in _LISTED]
    commands = {name.removesuffix("_main") for name in facetrain.commands.__all__}
    assert {words[0] for words in listed} == commands
    assert sorted(words[1] for words in listed if words[0] == "data") == sorted(_data_actions())
    for words, example in zip(listed, _EXAMPLES, strict=True):  # each line's example runs its own command
        n = 2 if words[0] == "data" else 1
        assert example[:n] == words[:n]


@pytest.mark.parametrize("words", _EXAMPLES, ids=lambda w: " ".join(w[:2]))
def test_each_help_example_composes(words):
    """The example's overrides name keys that exist (a renamed key would make Hydra refuse the line)."""
    command, args = words[0], _to_hydra_args(words[0], words[1:])
    overrides = [a for a in args if "=" in a and not a.startswith("dirs=")]
    assert overrides, words
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        cfg = compose(config_name=command, overrides=overrides)
    for override in overrides:  # a key=value override lands as given (a group choice selects a whole node)
        key, value = override.split("=", 1)
        node = OmegaConf.select(cfg, key, throw_on_resolution_failure=False)
        assert OmegaConf.is_config(node) or key in ("protocol", "action") or str(node) == value, override
