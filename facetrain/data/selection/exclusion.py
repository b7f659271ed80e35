"""Remove training identities that also appear in an evaluation set (NormFace §5.2), matched by normalized name."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

from facetrain.config import abs_path
from facetrain.errors import FacetrainError

__all__ = ["eval_set_names", "normalize_name", "overlapping_identities", "read_identity_names"]


def normalize_name(name: str) -> str:
    """A person's name in a comparable form: `Aaron_Eckhart`, `aaron eckhart`, `Aaron-Eckhart` agree.

    Accents are dropped (`José` = `Jose`), case is folded, and underscores, hyphens, dots,
    commas, quotes and runs of spaces all become one space.
    """
    text = unicodedata.normalize("NFKD", name)
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return " ".join(re.sub(r"[_\-.,'\"`]+", " ", text).split())


def _names_in_file(file: Path) -> list[str]:
    """One name per line; a line `name<TAB>count` (LFW's lfw-names.txt) or `name count` keeps the name."""
    names = []
    for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if "\t" in line:
            line = line.split("\t", 1)[0]
        else:
            parts = line.rsplit(None, 1)
            if len(parts) == 2 and parts[1].isdigit():
                line = parts[0]
        names.append(line)
    return names


def eval_set_names(source: str, known: Mapping[str, str] | None = None) -> list[str]:
    """The people of an evaluation set.

    Args:
        source: a name from `known` (`lfw`), a folder (its subfolders are the people, as in LFW's
            tree) or a text file of names (`lfw-names.txt`: `name<TAB>count` per line).
        known: short names for sources (`data.eval_sets` in the config).

    Returns:
        The names as written in the source.
    """
    known = dict(known or {})
    path = abs_path(known.get(source, source))
    if path.is_dir():
        return sorted(d.name for d in path.iterdir() if d.is_dir() and not d.name.startswith("."))
    if path.is_file():
        return _names_in_file(path)
    hint = f" (known sets: {', '.join(known)})" if known else ""
    raise FacetrainError(f"exclude_identities_of: {source!r} is neither a known evaluation set{hint} nor an "
                         f"existing folder or names file ({path}); point it at LFW's folder or lfw-names.txt")


def read_identity_names(path: str | Path) -> dict[str, str]:
    """Folder → person name, from `folder<TAB or space>name` lines (CASIA-WebFace's names.txt,
    MS-Celeb-1M's `Top1M_MidList.Name.tsv` with `m.0abc<TAB>"Name"@en`)."""
    file = abs_path(path)
    if not file.is_file():
        raise FacetrainError(f"data.identity_names={file} does not exist; give a file of `folder name` lines")
    mapping: dict[str, str] = {}
    for line in file.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.strip().split("\t", 1) if "\t" in line else line.strip().split(None, 1)
        if len(parts) == 2 and parts[0] not in mapping:  # the first name listed for a folder wins
            name = re.sub(r"@[A-Za-z-]+$", "", parts[1].strip()).strip().strip('"')
            mapping[parts[0]] = name
    return mapping


def overlapping_identities(classes: Sequence[str], sources: Iterable[str], known: Mapping[str, str] | None = None,
                           identity_names: Mapping[str, str] | None = None) -> list[str]:
    """Training identity folders whose person also appears in any of `sources`.

    A folder's person is `identity_names[folder]` when given, else the folder name itself.
    """
    banned: set[str] = set()
    for source in sources:
        banned |= {normalize_name(n) for n in eval_set_names(source, known)}
    names = identity_names or {}
    return [c for c in classes if normalize_name(names.get(c, c)) in banned]
