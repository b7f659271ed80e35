"""mlflow.json: which MLflow run mirrors a run (or sweep) directory, so eval and report log to the same run."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from facetrain.atomic import atomic_write

__all__ = ["LINK_NAME", "Link", "read_link", "write_link"]

LINK_NAME = "mlflow.json"


@dataclass(frozen=True)
class Link:
    tracking_uri: str
    experiment_id: str
    run_id: str


def write_link(directory: Path, link: Link) -> None:
    text = json.dumps(asdict(link), indent=2) + "\n"
    atomic_write(Path(directory) / LINK_NAME, lambda tmp: tmp.write_text(text))


def read_link(directory: Path) -> Link | None:
    """The directory's MLflow run, None when it has none (or the file is unreadable)."""
    try:
        data = json.loads((Path(directory) / LINK_NAME).read_text())
        return Link(str(data["tracking_uri"]), str(data["experiment_id"]), str(data["run_id"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
