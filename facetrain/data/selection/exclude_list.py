"""Exclusion lists: images or whole identities a training run leaves out, as `name<TAB>reason` lines.

The format is bad_files.tsv's (`path<TAB>reason`, a sample named as the dataset names it in logs: the path
relative to the root, or `train.rec:<key>` in a RecordIO pack), with one addition: a name ending in `/` is an
identity folder (its label in a RecordIO pack), and every image of that identity is left out.
`facetrain data audit` writes such a list (`exclude.tsv`); `data.exclude=FILE` (or a list of files) applies it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from facetrain.atomic import atomic_write
from facetrain.config import abs_path
from facetrain.errors import FacetrainError

__all__ = ["ExcludeList", "read_exclude_lists", "write_exclude_list"]


@dataclass
class ExcludeList:
    """What to leave out: sample names and identity names (without the trailing `/`)."""

    images: set[str] = field(default_factory=set)
    identities: set[str] = field(default_factory=set)

    def __bool__(self) -> bool:
        return bool(self.images or self.identities)


def read_exclude_lists(files: str | Iterable[str] | None) -> ExcludeList:
    """The union of the lists in `files` (one path or several; None: nothing excluded).

    Blank lines and `#` comments are skipped; the reason after the tab is for people, not read here.
    """
    if files is None or files == "":
        return ExcludeList()
    out = ExcludeList()
    for name in [files] if isinstance(files, str) else list(files):
        path = abs_path(name)
        if not path.is_file():
            raise FacetrainError(f"data.exclude: {path} does not exist; give the exclude.tsv that `facetrain data "
                                 "audit` wrote (or a file of `path<TAB>reason` lines)")
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            entry = line.split("\t", 1)[0].strip()
            if not entry or entry.startswith("#"):
                continue
            if entry.endswith("/"):
                out.identities.add(entry.rstrip("/"))
            else:
                out.images.add(entry)
    return out


def write_exclude_list(path: Path, images: Iterable[tuple[str, str]], identities: Iterable[tuple[str, str]],
                       header: str = "") -> Path:
    """Write (name, reason) pairs: identities first (as `name/`), then images, each sorted; atomically."""
    lines = [f"# {row}\n" for row in header.splitlines()]
    lines += [f"{name}/\t{reason}\n" for name, reason in sorted(identities)]
    lines += [f"{name}\t{reason}\n" for name, reason in sorted(images)]
    return atomic_write(path, lambda tmp: Path(tmp).write_text("".join(lines)))
