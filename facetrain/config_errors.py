"""A command line Hydra refuses (a mistyped key or option, an override that does not parse) as one line, exit 2.

Hydra prints these over several lines with exit status 1, and for a mistyped key it suggests `+key=value`, which
would add the typo as a new key that nothing reads. facetrain's other user errors are one line naming the fix."""

from __future__ import annotations

import contextlib
import difflib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from hydra.errors import ConfigCompositionException, MissingConfigException, OverrideParseException

__all__ = ["describe", "one_line_config_errors"]


@contextlib.contextmanager
def one_line_config_errors(command: str) -> Iterator[None]:
    """While a command runs, Hydra's refusals of its overrides are one `facetrain: error:` line and exit status 2."""
    # Hydra runs composition and the job through this module's run_and_report
    from hydra._internal import utils

    original = utils.run_and_report

    def run_and_report(func: Callable[[], Any]) -> Any:
        return original(lambda: _one_line(func, command))

    utils.run_and_report = run_and_report
    try:
        yield
    finally:
        utils.run_and_report = original


def _one_line(func: Callable[[], Any], command: str) -> Any:
    try:
        return func()
    except (ConfigCompositionException, OverrideParseException) as ex:
        print(f"facetrain: error: {describe(ex, command)}", file=sys.stderr)
        raise SystemExit(2) from None


def describe(ex: Exception, command: str) -> str:
    """The refusal in one line: what was typed, what exists (the closest names first), how to see the rest."""
    cause = ex.__cause__
    key = getattr(cause, "full_key", None)
    parent = getattr(cause, "parent_node", None)
    if isinstance(ex, MissingConfigException) and ex.options and ex.missing_cfg_file and "/" in ex.missing_cfg_file:
        group, option = ex.missing_cfg_file.rsplit("/", 1)
        return (f"{group}={option}: no such {group} option{_did_you_mean(option, ex.options)}; "
                f"the options: {', '.join(ex.options)}")
    if key and parent is not None and str(ex).startswith("Could not override"):
        name = str(key).rsplit(".", 1)[-1]
        where = f"under {str(key).rsplit('.', 1)[0]}" if "." in str(key) else "at the top level"
        return (f"{key}: no such key {where}{_did_you_mean(name, [str(k) for k in parent])}; "
                f"`facetrain {command} --cfg job` shows the keys (a leading + adds a new key)")
    lines = [ln.strip() for ln in str(ex).splitlines() if ln.strip() and not ln.startswith("See https://")]
    if isinstance(ex, OverrideParseException):
        return (f"{ex.override}: Hydra cannot parse this override ({lines[0] if lines else 'syntax'}); check its "
                "brackets and quotes (https://hydra.cc/docs/advanced/override_grammar/basic/)")
    return "; ".join(lines) + f" (`facetrain {command} --help` shows the groups and keys)"


def _did_you_mean(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, [n for n in names if not n.startswith("_")], n=3, cutoff=0.7)
    return f" (did you mean {' or '.join(close)}?)" if close else ""
