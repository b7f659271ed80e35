"""copy_rows: rows out of a mapped checkpoint, block by block, without keeping the file's pages resident."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from facetrain.sharded.pages import _releaser, copy_rows


def _rss_file() -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines() if x.startswith("RssFile:"))
    return int(line.split()[1]) * 1024


def test_copy_rows_from_memory_is_a_plain_copy_that_leaves_the_source_alone():
    src = torch.randn(1000, 64, generator=torch.Generator().manual_seed(0))
    before = src.clone()
    assert _releaser(src) is None  # anonymous memory: nothing may be released
    out = copy_rows(torch.empty_like(src), src, chunk_bytes=4096)
    assert torch.equal(out, before) and torch.equal(src, before)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc/self are Linux's")
def test_copy_rows_from_a_mapped_checkpoint_copies_exactly_and_releases_its_pages(tmp_path):
    rows = torch.randn(8192, 1024, generator=torch.Generator().manual_seed(1))  # 32 MiB
    torch.save({"w": rows}, tmp_path / "last.pt")
    mapped = torch.load(tmp_path / "last.pt", mmap=True, weights_only=True)["w"]
    assert _releaser(mapped) is not None
    start = _rss_file()
    out = copy_rows(torch.empty_like(mapped[1000:7000]), mapped[1000:7000], chunk_bytes=1 << 20)
    grown = _rss_file() - start
    assert torch.equal(out, rows[1000:7000])
    assert grown < 4 << 20, f"{grown} bytes of the 24 MiB copied stayed mapped"
    assert torch.equal(mapped[999:7001], rows[999:7001])  # released pages read back from the file
