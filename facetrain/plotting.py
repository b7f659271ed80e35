"""The one matplotlib set-up: figures on the headless Agg backend (servers and tests have no display), saved as PNG."""

from __future__ import annotations

from pathlib import Path

__all__ = ["close", "new_axes", "save_png"]


def new_axes(figsize: tuple[float, float] = (6, 4)):
    """(figure, axes) of a new figure at 100 dpi, matplotlib imported only when something is drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=figsize, dpi=100)


def close(fig) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def save_png(fig, path: Path) -> Path:
    """Lay out, write and close `fig`; the folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    close(fig)
    return path
