"""Plain-text tables for the terminal (and for pasting next to the papers' tables)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["format_table", "markdown_table", "pct"]


def pct(mean: float, std: float | None = None) -> str:
    """A fraction as a percentage, `99.28 ± 0.31`."""
    return f"{100 * mean:.2f}" + (f" ± {100 * std:.2f}" if std is not None else "")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [list(map(str, headers))] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """The same table as GitHub Markdown (a `|` inside a cell is escaped)."""
    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(headers), line(["---"] * len(headers)), *(line(r) for r in rows)])
