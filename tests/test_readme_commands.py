"""Every `facetrain ...` command line of the README composes: its command, data action, protocol, groups and keys exist."""

import re
import shlex
from pathlib import Path

from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from facetrain.cli import _to_hydra_args

README = (Path(__file__).resolve().parents[1] / "README.md").read_text()
COMMANDS = ("train", "eval", "data", "export", "report", "verify")


def _command_lines() -> list[str]:
    """Indented example lines and `facetrain ...` spans in the text, without comments and placeholders."""
    found = [m.group(1) for m in re.finditer(r"`(facetrain [^`]+)`", README)]
    found += [ln.strip() for ln in README.splitlines() if ln.startswith("    ") and "facetrain" in ln
              and (ln.strip().startswith(("facetrain ", "torchrun ")) or "-m facetrain.cli" in ln)]
    lines = [re.split(r"\s+#\s", ln)[0].rstrip(" \\") for ln in found]
    placeholder = re.compile(r"\||\.\.\.|PROTOCOL")
    return sorted({ln for ln in lines if not placeholder.search(ln)})


def _words(line: str) -> list[str]:
    words = shlex.split(line)
    return words[words.index("facetrain.cli") + 1:] if "facetrain.cli" in words else words[1:]


LINES = [ln for ln in _command_lines() if _words(ln) and not _words(ln)[0].startswith("-")]


def _overrides(command: str, rest: list[str]) -> list[str]:
    """The key=value overrides Hydra would compose (a sweep's first value; flags and Hydra's own settings left out)."""
    args, out = _to_hydra_args(command, rest), []
    for i, arg in enumerate(args):
        if arg.startswith("-") or (i and args[i - 1] == "--cfg") or arg.startswith("hydra"):
            continue
        key, value = arg.split("=", 1)
        out.append(f"{key}={value.split(',')[0] if '-m' in args and not value.startswith('[') else value}")
    return out


def test_every_readme_command_composes():
    assert len(LINES) > 60 and all(_words(ln)[0] in COMMANDS for ln in LINES), LINES
    failed, distinct = [], {}
    for line in LINES:  # one compose per distinct command and overrides
        command, *rest = _words(line)
        distinct.setdefault((command, *_overrides(command, rest)), line)
    with initialize_config_module(config_module="facetrain.configs", version_base="1.3"):
        for (command, *overrides), line in distinct.items():
            try:
                cfg = compose(config_name=command, overrides=overrides)
            except Exception as err:  # noqa: BLE001 - collected: every broken line is named at once
                failed.append(f"{line}: {str(err).splitlines()[0]}")
                continue
            if command == "data" and cfg.action not in OmegaConf.to_container(cfg.actions, resolve=False):
                failed.append(f"{line}: no data action {cfg.action!r}")
    assert not failed, "\n".join(failed)
