"""Nothing in the repository refers to a path outside it: no sibling folder, no paper file a clone lacks."""

import re

from helpers import REPO

# A sibling checkout's folder, an absolute path on one machine, or a paper's text file by name;
# papers are cited by authors, year and equation (docs/references.md).
OUTSIDE = re.compile(r"\.\./shared|/work/|\b(?:l2-softmax|normface|ring-loss|loss-design-review|"
                     r"architectures-and-losses)\.md\b|reference/protocols\.md|\bDESIGN\.md|\bSTYLE\.md")
TEXT = {".py", ".md", ".yaml", ".toml", ".txt", ".cfg", ".sh"}


def _text_files():
    for top in ("facetrain", "configs", "tests", "scripts", "docs"):
        yield from (p for p in (REPO / top).rglob("*") if p.suffix in TEXT and "__pycache__" not in p.parts)
    yield from (REPO / name for name in ("README.md", "Makefile", "pyproject.toml", "LICENSE"))


def test_no_text_file_points_outside_the_repository():
    hits = [f"{path.relative_to(REPO)}:{no}: {line.strip()[:80]}"
            for path in _text_files() if path.name != "test_self_contained.py"
            for no, line in enumerate(path.read_text(errors="replace").splitlines(), 1) if OUTSIDE.search(line)]
    assert not hits, "\n".join(hits)
    assert len(list(_text_files())) > 100  # the walk found the repository's files
